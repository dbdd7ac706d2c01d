//! The Redfish service every simulated BMC serves: one router for the whole fleet; the
//! `gate` middleware resolves which BMC a connection belongs to.

mod error;
mod gate;
mod resources;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use self::error::RfError;
use self::gate::Bmc;
use self::resources::{Identity, NICS};
use crate::model::{BootPatch, Device};
use crate::state::Fleet;

/// Every BMC serves exactly one ComputerSystem, with this id.
pub const SYSTEM_ID: &str = "1";
pub(crate) const SYSTEM: &str = "/redfish/v1/Systems/1";
pub(crate) const MANAGER: &str = "/redfish/v1/Managers/1";
pub(crate) const CHASSIS: &str = "/redfish/v1/Chassis/1";
/// Inventory every simulated server reports (also written into emitted LabHosts).
pub(crate) const CPU_COUNT: u32 = 2;
pub(crate) const MEMORY_GIB: u32 = 64;

pub(crate) fn router(fleet: Arc<Fleet>) -> Router {
    Router::new()
        .route(
            "/redfish",
            get(|| async { Json(json!({ "v1": "/redfish/v1/" })) }),
        )
        .route("/redfish/v1", get(service_root))
        .route("/redfish/v1/", get(service_root))
        .route("/redfish/v1/Systems", get(systems))
        .route(SYSTEM, get(system).patch(patch_system))
        .route(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .route("/redfish/v1/Systems/1/EthernetInterfaces", get(nics))
        .route("/redfish/v1/Systems/1/EthernetInterfaces/{nic}", get(nic))
        .route("/redfish/v1/Systems/1/Storage", get(storages))
        .route(
            "/redfish/v1/Systems/1/Storage/1",
            get(|| async { Json(resources::storage()) }),
        )
        .route("/redfish/v1/Systems/1/Storage/1/Drives/1", get(drive))
        .route("/redfish/v1/Managers", get(managers))
        .route(MANAGER, get(manager))
        .route("/redfish/v1/Managers/1/VirtualMedia", get(media_collection))
        .route("/redfish/v1/Managers/1/VirtualMedia/{device}", get(media))
        .route(
            "/redfish/v1/Managers/1/VirtualMedia/{device}/Actions/VirtualMedia.InsertMedia",
            post(insert_media),
        )
        .route(
            "/redfish/v1/Managers/1/VirtualMedia/{device}/Actions/VirtualMedia.EjectMedia",
            post(eject_media),
        )
        .route("/redfish/v1/Chassis", get(chassis_collection))
        .route(CHASSIS, get(chassis))
        .route("/redfish/v1/SessionService", get(session_service))
        .route(
            "/redfish/v1/SessionService/Sessions",
            get(sessions).post(login),
        )
        .route(
            "/redfish/v1/SessionService/Sessions/{id}",
            get(session).delete(logout),
        )
        .route(
            "/redfish/v1/TaskService/TaskMonitors/{id}",
            get(task_monitor),
        )
        .fallback(|| async { RfError::not_found() })
        .layer(middleware::from_fn_with_state(fleet.clone(), gate::gate))
        .with_state(fleet)
}

fn who(bmc: &Bmc) -> Identity {
    Identity { index: bmc.index }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, RfError> {
    // Clients differ in Content-Type; accept JSON whatever the header says.
    serde_json::from_slice(if bytes.is_empty() { b"{}" } else { bytes }).map_err(RfError::malformed)
}

/// 204 for a finished action, or 202 + task monitor when the fleet is configured for tasks.
fn action_done(bmc: &Bmc, takes: std::time::Duration) -> Response {
    if !bmc.fleet.config.async_actions {
        return StatusCode::NO_CONTENT.into_response();
    }
    let id = bmc.host().bmc().start_task(bmc.fleet.now(), takes);
    let monitor = format!("/redfish/v1/TaskService/TaskMonitors/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, monitor)],
        Json(resources::task(id)),
    )
        .into_response()
}

async fn service_root(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    Json(resources::service_root(&who(&bmc)))
}

async fn systems() -> Json<Value> {
    Json(resources::collection(
        "/redfish/v1/Systems",
        "ComputerSystemCollection",
        "Systems",
        &[SYSTEM.into()],
    ))
}

async fn system(Extension(bmc): Extension<Bmc>) -> Response {
    let host = bmc.host();
    let mut model = host.bmc();
    let state = model.state(bmc.fleet.now());
    let etag = model.etag();
    let json = resources::system(&who(&bmc), &model, &state);
    ([(header::ETAG, etag)], Json(json)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SystemPatch {
    boot: Option<BootFields>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BootFields {
    boot_source_override_target: Option<String>,
    boot_source_override_enabled: Option<String>,
    boot_source_override_mode: Option<String>,
}

async fn patch_system(
    Extension(bmc): Extension<Bmc>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, RfError> {
    let patch: SystemPatch = body(&bytes)?;
    let Some(boot) = patch.boot else {
        return Err(RfError::new(
            StatusCode::BAD_REQUEST,
            "PropertyNotWritable",
            "only Boot can be patched",
        ));
    };
    let host = bmc.host();
    let mut model = host.bmc();
    if let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && want != "*"
        && want != model.etag()
    {
        return Err(RfError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "the ETag does not match",
        ));
    }
    model.patch_boot(
        bmc.fleet.now(),
        BootPatch {
            target: boot.boot_source_override_target,
            enabled: boot.boot_source_override_enabled,
            mode: boot.boot_source_override_mode,
        },
    )?;
    Ok((StatusCode::NO_CONTENT, [(header::ETAG, model.etag())]).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResetBody {
    reset_type: Option<String>,
}

async fn reset(Extension(bmc): Extension<Bmc>, bytes: Bytes) -> Result<Response, RfError> {
    let ResetBody { reset_type } = body(&bytes)?;
    let reset_type = reset_type.ok_or_else(|| RfError::missing("ResetType"))?;
    let faults = bmc.host().faults.borrow().clone();
    bmc.host().bmc().reset(
        bmc.fleet.now(),
        &reset_type,
        faults.power_stuck,
        faults.boot_hangs,
    )?;
    Ok(action_done(&bmc, bmc.fleet.config.power_delay))
}

async fn nics() -> Json<Value> {
    let path = format!("{SYSTEM}/EthernetInterfaces");
    let members: Vec<String> = NICS.iter().map(|n| format!("{path}/{n}")).collect();
    Json(resources::collection(
        &path,
        "EthernetInterfaceCollection",
        "Ethernet interfaces",
        &members,
    ))
}

async fn nic(
    Extension(bmc): Extension<Bmc>,
    Path(nic): Path<String>,
) -> Result<Json<Value>, RfError> {
    let nic = nic
        .parse::<u8>()
        .ok()
        .filter(|n| NICS.contains(n))
        .ok_or_else(RfError::not_found)?;
    Ok(Json(resources::ethernet_interface(&who(&bmc), nic)))
}

async fn storages() -> Json<Value> {
    let path = format!("{SYSTEM}/Storage");
    Json(resources::collection(
        &path,
        "StorageCollection",
        "Storage",
        &[format!("{path}/1")],
    ))
}

async fn drive(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    Json(resources::drive(&who(&bmc)))
}

async fn managers() -> Json<Value> {
    Json(resources::collection(
        "/redfish/v1/Managers",
        "ManagerCollection",
        "Managers",
        &[MANAGER.into()],
    ))
}

async fn manager(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    Json(resources::manager(&who(&bmc)))
}

async fn media_collection() -> Json<Value> {
    let path = format!("{MANAGER}/VirtualMedia");
    Json(resources::collection(
        &path,
        "VirtualMediaCollection",
        "Virtual media",
        &Device::ALL.map(|d| format!("{path}/{}", d.id())),
    ))
}

fn device(id: &str) -> Result<Device, RfError> {
    Device::from_id(id).ok_or_else(|| {
        RfError::new(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            "no such virtual media device",
        )
    })
}

async fn media(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<String>,
) -> Result<Json<Value>, RfError> {
    let device = device(&id)?;
    let state = bmc.host().bmc().state(bmc.fleet.now());
    Ok(Json(resources::virtual_media(&state, device)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InsertBody {
    image: Option<String>,
    inserted: Option<bool>,
    write_protected: Option<bool>,
}

async fn insert_media(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, RfError> {
    let device = device(&id)?;
    let InsertBody {
        image,
        inserted,
        write_protected,
    } = body(&bytes)?;
    let image = image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| RfError::missing("Image"))?;
    if inserted == Some(false) {
        return Err(RfError::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterNotSupported",
            "Inserted=false is not supported",
        ));
    }
    bmc.host().bmc().insert_media(
        bmc.fleet.now(),
        device,
        image,
        write_protected.unwrap_or(true),
    )?;
    Ok(action_done(&bmc, std::time::Duration::ZERO))
}

async fn eject_media(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<String>,
) -> Result<Response, RfError> {
    let device = device(&id)?;
    bmc.host().bmc().eject_media(bmc.fleet.now(), device);
    Ok(action_done(&bmc, std::time::Duration::ZERO))
}

async fn chassis_collection() -> Json<Value> {
    Json(resources::collection(
        "/redfish/v1/Chassis",
        "ChassisCollection",
        "Chassis",
        &[CHASSIS.into()],
    ))
}

async fn chassis(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    let state = bmc.host().bmc().state(bmc.fleet.now());
    Json(resources::chassis(&who(&bmc), &state))
}

async fn session_service(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    Json(resources::session_service(
        bmc.fleet.config.session_timeout.as_secs(),
    ))
}

async fn sessions(Extension(bmc): Extension<Bmc>) -> Json<Value> {
    let path = "/redfish/v1/SessionService/Sessions";
    let members: Vec<String> = bmc
        .host()
        .bmc()
        .sessions(bmc.fleet.now())
        .keys()
        .map(|id| format!("{path}/{id}"))
        .collect();
    Json(resources::collection(
        path,
        "SessionCollection",
        "Sessions",
        &members,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LoginBody {
    user_name: Option<String>,
    password: Option<String>,
}

async fn login(Extension(bmc): Extension<Bmc>, bytes: Bytes) -> Result<Response, RfError> {
    let LoginBody {
        user_name,
        password,
    } = body(&bytes)?;
    let (Some(user), Some(password)) = (user_name, password) else {
        return Err(RfError::missing("UserName and Password"));
    };
    if !bmc.fleet.login_ok(&user, &password) {
        return Err(RfError::unauthorized());
    }
    let token = new_token();
    let id = bmc
        .host()
        .bmc()
        .open_session(bmc.fleet.now(), &user, token.clone())?;
    let location = format!("/redfish/v1/SessionService/Sessions/{id}");
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::HeaderName::from_static("x-auth-token"), token),
        ],
        Json(resources::session(id, &user)),
    )
        .into_response())
}

fn new_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn session(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<u32>,
) -> Result<Json<Value>, RfError> {
    let host = bmc.host();
    let mut model = host.bmc();
    let session = model
        .sessions(bmc.fleet.now())
        .get(&id)
        .ok_or_else(RfError::not_found)?;
    Ok(Json(resources::session(id, &session.user)))
}

async fn logout(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<u32>,
) -> Result<StatusCode, RfError> {
    if bmc.host().bmc().close_session(bmc.fleet.now(), id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(RfError::not_found())
    }
}

/// Redfish task monitor: 202 + Task while running, then the action's own result (204).
async fn task_monitor(
    Extension(bmc): Extension<Bmc>,
    Path(id): Path<u32>,
) -> Result<Response, RfError> {
    match bmc.host().bmc().poll_task(bmc.fleet.now(), id) {
        None => Err(RfError::not_found()),
        Some(false) => Ok((StatusCode::ACCEPTED, Json(resources::task(id))).into_response()),
        Some(true) => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
