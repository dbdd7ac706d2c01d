//! Renders a host's cloud-init NoCloud seed for one run of a booking (pure: the caller reads
//! the PodRequest, its user-data Secret, the Lease and the LabHost):
//!
//! - `meta-data`: an instance-id unique to the booking, host and run (cloud-init runs its
//!   per-instance modules again for a new one), `local-hostname` the Lease's hostname;
//! - `user-data`: `#cloud-config` user data gets the booking's `ssh_authorized_keys` added to
//!   its own and the operator's `phone_home` in place of any it had; any other user data (a
//!   `#!` script, a MIME multipart, ...) goes as it is beside an operator `#cloud-config` part
//!   in a MIME multipart;
//! - `network-config`: the booking's, as given.
//!
//! Errors name the PodRequest field and never repeat the user data.

use base64::{Engine, engine::general_purpose::STANDARD};
use labpods_api::v1alpha1::{AccessSpec, MAX_USER_DATA_BYTES};
use serde_yaml::{Mapping, Value};
use url::Url;

/// The field the user data comes from, as errors name it.
pub const USER_DATA_FIELD: &str = "spec.access.userDataSecretRef";

/// What cloud-init posts to the phone-home URL, in the order of its docs.
pub const PHONE_HOME_POST: [&str; 6] = [
    "pub_key_rsa",
    "pub_key_ecdsa",
    "pub_key_ed25519",
    "instance_id",
    "hostname",
    "fqdn",
];

/// Why a seed cannot be rendered: the booking's input, named by its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error(
        "{USER_DATA_FIELD}: the user data is {0} bytes, more than {MAX_USER_DATA_BYTES}: make it smaller (e.g. fetch the rest with #include)"
    )]
    TooLarge(usize),
    #[error(
        "{USER_DATA_FIELD}: the #cloud-config user data is not a YAML mapping ({0}): fix its syntax"
    )]
    NotAMapping(String),
}

/// The host's access: the role's fields where set, else the request's.
pub fn effective_access(request: Option<&AccessSpec>, role: Option<&AccessSpec>) -> AccessSpec {
    let request = request.cloned().unwrap_or_default();
    let Some(role) = role else {
        return request;
    };
    AccessSpec {
        ssh_authorized_keys: if role.ssh_authorized_keys.is_empty() {
            request.ssh_authorized_keys
        } else {
            role.ssh_authorized_keys.clone()
        },
        user_data_secret_ref: role
            .user_data_secret_ref
            .clone()
            .or(request.user_data_secret_ref),
        network_data: role.network_data.clone().or(request.network_data),
    }
}

/// One host's seed input, for one run.
#[derive(Debug, Clone, Copy)]
pub struct SeedInput<'a> {
    pub instance_id: &'a str,
    pub hostname: &'a str,
    pub ssh_authorized_keys: &'a [String],
    /// The user data read from the Secret, if the booking names one.
    pub user_data: Option<&'a [u8]>,
    pub network_config: Option<&'a str>,
    /// This run's phone-home URL (with its token).
    pub phone_home: Option<&'a Url>,
}

/// The seed's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub meta_data: String,
    pub user_data: Vec<u8>,
    pub network_config: Option<String>,
}

impl Seed {
    /// The NoCloud image holding the files, stamped `unix_seconds`.
    pub fn image(&self, unix_seconds: i64) -> Result<Vec<u8>, labpods_cidata::Error> {
        let mut files = vec![
            labpods_cidata::File {
                name: "meta-data",
                data: self.meta_data.as_bytes(),
            },
            labpods_cidata::File {
                name: "user-data",
                data: &self.user_data,
            },
        ];
        if let Some(n) = &self.network_config {
            files.push(labpods_cidata::File {
                name: "network-config",
                data: n.as_bytes(),
            });
        }
        labpods_cidata::write(&files, unix_seconds)
    }
}

/// cloud-init's instance-id for a host in one run of a booking.
pub fn instance_id(booking_uid: &str, host: &str, run_started: i64) -> String {
    format!("labpods-{booking_uid}-{host}-{run_started}")
}

/// The seed of a release run's wipe image: nothing of the booking (no keys, no user data),
/// only the run's phone-home, which is the wipe's evidence, and a power-off after it.
/// cloud-init runs a wipe image's own wipe (its `runcmd` or scripts, in `scripts-user`)
/// before `phone_home` and `power_state_change`, so the call comes only after the wipe.
pub fn wipe(instance_id: &str, hostname: &str, phone_home: &Url) -> Seed {
    let mut meta = Mapping::new();
    meta.insert("instance-id".into(), instance_id.into());
    meta.insert("local-hostname".into(), hostname.into());
    let mut phone = Mapping::new();
    phone.insert("url".into(), phone_home.as_str().into());
    phone.insert(
        "post".into(),
        Value::Sequence(vec!["instance_id".into(), "hostname".into()]),
    );
    phone.insert("tries".into(), 10.into());
    let mut power = Mapping::new();
    power.insert("mode".into(), "poweroff".into());
    power.insert(
        "message".into(),
        "labpods: wipe reported, powering off".into(),
    );
    let mut config = Mapping::new();
    config.insert("phone_home".into(), Value::Mapping(phone));
    config.insert("power_state".into(), Value::Mapping(power));
    Seed {
        meta_data: serde_yaml::to_string(&meta).unwrap_or_default(),
        user_data: cloud_config(config),
        network_config: None,
    }
}

/// Renders the seed.
pub fn render(input: &SeedInput<'_>) -> Result<Seed, SeedError> {
    let mut meta = Mapping::new();
    meta.insert("instance-id".into(), input.instance_id.into());
    meta.insert("local-hostname".into(), input.hostname.into());
    let meta_data = serde_yaml::to_string(&meta).unwrap_or_default();
    let user_data = match input.user_data {
        Some(data) if data.len() > MAX_USER_DATA_BYTES => {
            return Err(SeedError::TooLarge(data.len()));
        }
        Some(data) if data.starts_with(b"#cloud-config\n") || data == b"#cloud-config" => {
            let theirs: Value =
                serde_yaml::from_slice(data).map_err(|e| SeedError::NotAMapping(location(&e)))?;
            let theirs = match theirs {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                _ => return Err(SeedError::NotAMapping("a scalar or a list".into())),
            };
            cloud_config(operator_config(input, theirs))
        }
        Some(data) => multipart(data, &cloud_config(operator_config(input, Mapping::new()))),
        None => cloud_config(operator_config(input, Mapping::new())),
    };
    Ok(Seed {
        meta_data,
        user_data,
        network_config: input.network_config.map(str::to_owned),
    })
}

/// Where the YAML broke, without its content.
fn location(e: &serde_yaml::Error) -> String {
    e.location().map_or_else(
        || "invalid YAML".to_owned(),
        |l| format!("invalid YAML at line {}, column {}", l.line(), l.column()),
    )
}

/// `config` with the booking's keys added and the operator's phone-home set.
fn operator_config(input: &SeedInput<'_>, mut config: Mapping) -> Mapping {
    let key = Value::from("ssh_authorized_keys");
    let mut keys: Vec<Value> = match config.remove(&key) {
        Some(Value::Sequence(s)) => s,
        Some(Value::String(s)) => vec![Value::String(s)],
        _ => Vec::new(),
    };
    for k in input.ssh_authorized_keys {
        let k = Value::from(k.as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if !keys.is_empty() {
        config.insert(key, Value::Sequence(keys));
    }
    let phone = Value::from("phone_home");
    config.remove(&phone);
    if let Some(url) = input.phone_home {
        let mut p = Mapping::new();
        p.insert("url".into(), url.as_str().into());
        p.insert(
            "post".into(),
            Value::Sequence(PHONE_HOME_POST.iter().map(|&f| f.into()).collect()),
        );
        p.insert("tries".into(), 10.into());
        config.insert(phone, Value::Mapping(p));
    }
    config
}

fn cloud_config(config: Mapping) -> Vec<u8> {
    let body = if config.is_empty() {
        String::new()
    } else {
        serde_yaml::to_string(&config).unwrap_or_default()
    };
    format!("#cloud-config\n{body}").into_bytes()
}

/// cloud-init's content type for user data, from how it starts (cloud-init's own rules).
fn content_type(data: &[u8]) -> &'static str {
    const BY_START: [(&str, &str); 7] = [
        ("#!", "text/x-shellscript"),
        ("#include", "text/x-include-url"),
        ("#cloud-boothook", "text/cloud-boothook"),
        ("#cloud-config-archive", "text/cloud-config-archive"),
        ("#part-handler", "text/part-handler"),
        ("## template: jinja", "text/jinja2"),
        ("#upstart-job", "text/upstart-job"),
    ];
    BY_START
        .iter()
        .find(|(start, _)| data.starts_with(start.as_bytes()))
        .map_or("text/plain", |(_, t)| t)
}

/// A MIME multipart of the user's data (as it is when it is MIME itself, base64 otherwise)
/// and the operator's cloud-config. The boundary is derived from the content, so it cannot
/// occur in it.
fn multipart(theirs: &[u8], ours: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, theirs);
    let boundary: String = digest
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    let boundary = format!("labpods-{boundary}");
    let base64_part = |content_type: &str, data: &[u8]| {
        format!(
            "--{boundary}\nContent-Type: {content_type}; charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: base64\n\n{}\n",
            wrap(&STANDARD.encode(data))
        )
    };
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
    let is_mime = ["Content-Type:", "MIME-Version:"]
        .iter()
        .any(|h| theirs.len() >= h.len() && theirs[..h.len()].eq_ignore_ascii_case(h.as_bytes()));
    let mut bytes;
    if is_mime {
        out.push_str(&format!("--{boundary}\n"));
        bytes = out.into_bytes();
        bytes.extend_from_slice(theirs);
        bytes.push(b'\n');
    } else {
        out.push_str(&base64_part(content_type(theirs), theirs));
        bytes = out.into_bytes();
    }
    bytes.extend_from_slice(base64_part("text/cloud-config", ours).as_bytes());
    bytes.extend_from_slice(format!("--{boundary}--\n").as_bytes());
    bytes
}

/// Base64 in 76-character lines (RFC 2045).
fn wrap(b64: &str) -> String {
    b64.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests;
