//! A lab of sushy-tools systems (OpenStack's Redfish emulator with its fake driver: an
//! implementation nobody here wrote) for the e2e test that runs the operator against it, plus
//! an image server the emulator downloads virtual media from (Python's http.server).
//! Both come from the venv that tests/support/python-venv.sh makes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use labpods_api::v1alpha1::{LABEL_LAB, LABEL_PROFILE, LabHost, LabHostSpec, SecretReference};
use labpods_redfish::{
    Bmc, BmcConnector, BmcTarget, ClientPolicy, Credentials, RedfishConnector, TlsOptions, Url,
};

use crate::control_plane::free_port;
use crate::leaks::Confidential;
use crate::supervised::{Supervised, log_tail};

/// The profile of every sushy host (its boot fallback is set short in the operator config).
pub const SUSHY_PROFILE: &str = "sushy";
const SECRET_NAME: &str = "sushy-credentials";
const IMAGE_FILE: &str = "e2e-os.iso";

#[derive(Debug)]
pub struct SushyLab {
    // Dropped (stopped) before the directory they use.
    emulator: Supervised,
    _images: Supervised,
    endpoint: Url,
    lab: String,
    image_url: String,
    /// LabHost name -> system UUID.
    systems: BTreeMap<String, String>,
    /// The password of the credentials Secret (the emulator accepts any: it must not leak).
    password: String,
    _dir: tempfile::TempDir,
}

impl SushyLab {
    /// Starts the emulator with `count` powered-off fake systems behind one endpoint and
    /// registers a LabHost per system (`<lab>-<n>`, system id = its UUID).
    pub async fn start(
        client: &Client,
        lab: &str,
        secret_namespace: &str,
        count: usize,
    ) -> Result<Self> {
        let venv = venv()?;
        let dir = tempfile::Builder::new()
            .prefix("labpods-sushy-")
            .tempdir()
            .context("creating a directory")?;
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).context("creating the image directory")?;
        std::fs::write(images.join(IMAGE_FILE), [0x42u8; 4096]).context("writing the image")?;
        let image_port = free_port()?;
        let image_server = Supervised::spawn(
            "image-server",
            &venv.join("bin/python"),
            &[
                "-m".into(),
                "http.server".into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--directory".into(),
                images.into_os_string(),
                image_port.to_string().into(),
            ],
            &dir.path().join("images.log"),
        )?;

        let mut systems = BTreeMap::new();
        let mut config = String::new();
        let port = free_port()?;
        config.push_str(&format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_STATE_DIR = '{}'\nSUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = [\n",
            dir.path().join("state").display()
        ));
        for i in 1..=count {
            let uuid = format!("5e2e0000-0000-4000-8000-{i:012}");
            config.push_str(&format!(
                "    {{'uuid': '{uuid}', 'name': '{lab}-{i}', 'power_state': 'Off', 'nics': [{{'mac': '52:54:00:e2:00:{i:02x}', 'ip': '192.0.2.{i}'}}]}},\n"
            ));
            systems.insert(format!("{lab}-{i}"), uuid);
        }
        config.push_str("]\n");
        let config_path = dir.path().join("emulator.conf");
        std::fs::write(&config_path, config).context("writing the emulator config")?;
        // `env` clears proxies for the emulator: it downloads media with Python `requests`.
        let emulator_args: Vec<OsString> = vec![
            "no_proxy=127.0.0.1,localhost".into(),
            "NO_PROXY=127.0.0.1,localhost".into(),
            venv.join("bin/sushy-emulator").into_os_string(),
            "--config".into(),
            config_path.into_os_string(),
        ];
        let mut emulator = Supervised::spawn(
            "sushy-emulator",
            Path::new("/usr/bin/env"),
            &emulator_args,
            &dir.path().join("sushy.log"),
        )?;
        emulator
            .wait_listening(port, Duration::from_secs(60))
            .await?;

        let endpoint =
            Url::parse(&format!("http://127.0.0.1:{port}/")).context("the emulator URL")?;
        let lab = Self {
            emulator,
            _images: image_server,
            endpoint,
            lab: lab.to_string(),
            image_url: format!("http://127.0.0.1:{image_port}/{IMAGE_FILE}"),
            systems,
            password: crate::leaks::unique_password(),
            _dir: dir,
        };
        lab.register(client, secret_namespace).await?;
        Ok(lab)
    }

    async fn register(&self, client: &Client, secret_namespace: &str) -> Result<()> {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(SECRET_NAME.to_string()),
                namespace: Some(secret_namespace.to_string()),
                ..ObjectMeta::default()
            },
            // The emulator runs without an auth file: any login is accepted.
            string_data: Some(BTreeMap::from([
                ("username".to_string(), "admin".to_string()),
                ("password".to_string(), self.password.clone()),
            ])),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(client.clone(), secret_namespace)
            .create(&PostParams::default(), &secret)
            .await
            .context("creating the sushy credentials Secret")?;
        let api: Api<LabHost> = Api::all(client.clone());
        for (name, uuid) in &self.systems {
            let spec = LabHostSpec::new(
                self.endpoint.as_str(),
                SUSHY_PROFILE,
                SecretReference::new(secret_namespace, SECRET_NAME),
            )
            .with_system_id(uuid.clone());
            let mut labhost = LabHost::new(name, spec);
            labhost.metadata.labels = Some(BTreeMap::from([
                (LABEL_LAB.to_string(), self.lab.clone()),
                (LABEL_PROFILE.to_string(), SUSHY_PROFILE.to_string()),
            ]));
            api.create(&PostParams::default(), &labhost)
                .await
                .with_context(|| format!("registering LabHost {name}"))?;
        }
        Ok(())
    }

    /// The login of the credentials Secret, as something that must never leak.
    pub fn login(&self) -> Confidential {
        Confidential::bmc_login("the sushy-tools login's password", "admin", &self.password)
    }

    /// The image the emulator can download.
    pub fn image_url(&self) -> &str {
        &self.image_url
    }

    pub fn names(&self) -> Vec<String> {
        self.systems.keys().cloned().collect()
    }

    /// A Redfish client for the system behind a LabHost, to check what the emulator holds.
    pub async fn bmc(&self, host: &str) -> Result<std::sync::Arc<dyn Bmc>> {
        let uuid = self
            .systems
            .get(host)
            .with_context(|| format!("{host} is not a sushy host"))?;
        let target = BmcTarget {
            endpoint: self.endpoint.clone(),
            system_id: Some(uuid.clone()),
            credentials: Credentials::new("admin", &self.password),
            tls: TlsOptions::default(),
        };
        Ok(RedfishConnector::new(ClientPolicy::default())
            .connect(&target)
            .await?)
    }

    /// The end of the emulator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.emulator.log())
    }
}

/// The venv from tests/support/python-venv.sh (`$LABPODS_VENV`, else the script's default);
/// the seed image tests run its pycdlib.
pub fn venv() -> Result<PathBuf> {
    let dir = std::env::var_os("LABPODS_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::home_dir().map(|home| home.join(".cache")))?;
            Some(cache.join("labpods/venv"))
        });
    match dir {
        Some(dir) if dir.join("bin/sushy-emulator").is_file() => Ok(dir),
        _ => bail!(
            "sushy-emulator not found in the Python venv: run `bash tests/support/python-venv.sh` \
             (or `cargo xtask test`, which runs it)"
        ),
    }
}
