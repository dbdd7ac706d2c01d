//! The simulated hosts' cloud-init. When a host's OS is running with a seed on its USB stick,
//! it does what cloud-init's NoCloud datasource and `phone_home` module do on a first boot:
//! fetches the medium's image (as the BMC would stream it), reads the `cidata` files, and
//! posts `pub_key_ed25519=...&instance_id=...&hostname=...` to the `phone_home.url` of the
//! user data, from the host's own address, with an SSH host key generated for the instance.
//! A later boot of the same instance posts nothing (cloud-init runs `phone_home` once per
//! instance). Then, as cloud-init's `power_state_change` module does, user data with
//! `power_state: {mode: poweroff}` powers the machine off (what a wipe image's seed asks).
//! While the `no_cloud_init` fault is set the OS reads nothing (its seed is played once the
//! fault is cleared, if the same boot still runs). What it read and
//! posted is kept in the host's state for tests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_yaml::Value;

use crate::model::{PhoneHomePost, Playback, SeedRead};
use crate::state::Fleet;

/// How often the fleet looks for hosts that finished booting with a seed.
const TICK: Duration = Duration::from_millis(250);
/// Largest seed image fetched (the operator's user data is at most 64 KiB).
const MAX_SEED_BYTES: usize = 1024 * 1024;
/// cloud-init's default and the most it is allowed here.
const MAX_TRIES: u64 = 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The address host `index` (1-based) posts from: its own loopback address, when the fleet
/// serves on loopback (any 127/8 address reaches a listener on 127.0.0.1); None otherwise
/// (the fleet's own address is all a host has then).
pub(crate) fn host_address(bind: IpAddr, index: usize) -> Option<IpAddr> {
    if !bind.is_loopback() || !bind.is_ipv4() {
        return None;
    }
    let [_, _, hi, lo] = u32::try_from(index).ok()?.to_be_bytes();
    Some(IpAddr::V4(Ipv4Addr::new(127, 100, hi, lo)))
}

/// Plays the seeds of hosts that finished booting, until the fleet stops.
pub(crate) async fn run(fleet: Arc<Fleet>) -> std::io::Result<()> {
    let mut shutdown = fleet.shutdown.clone();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        let now = fleet.now();
        for host in &fleet.hosts {
            // Checked first: a boot's seed is played once the fault is cleared.
            if host.faults.borrow().no_cloud_init {
                continue;
            }
            let due = host.bmc().seed_due(now);
            if let Some(url) = due {
                tokio::spawn(play(fleet.clone(), host.index, url));
            }
        }
    }
}

async fn play(fleet: Arc<Fleet>, index: usize, url: String) {
    let address = host_address(fleet.config.bind, index);
    let playback = match client(address) {
        Ok(http) => playback(&fleet, index, &http, url, address).await,
        Err(error) => Playback {
            url,
            error: Some(error),
            ..Playback::default()
        },
    };
    if let Some(host) = fleet.host(index) {
        let mut bmc = host.bmc();
        if playback.powered_off {
            bmc.power_off_from_os(fleet.now());
        }
        bmc.record_playback(playback);
    }
}

fn client(address: Option<IpAddr>) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(address)
        .timeout(REQUEST_TIMEOUT)
        .user_agent("Cloud-Init (labpods-sim)")
        .build()
        .map_err(|e| e.to_string())
}

async fn playback(
    fleet: &Fleet,
    index: usize,
    http: &reqwest::Client,
    url: String,
    address: Option<IpAddr>,
) -> Playback {
    let mut out = Playback {
        url: url.clone(),
        ..Playback::default()
    };
    let seed = match fetch(http, &url).await.and_then(|image| read_seed(&image)) {
        Ok(seed) => seed,
        Err(error) => {
            out.error = Some(error);
            return out;
        }
    };
    let instance = seed.instance_id.clone().unwrap_or_default();
    let again = fleet
        .host(index)
        .is_some_and(|h| h.bmc().last_instance() == Some(instance.as_str()));
    let phone_home = phone_home_config(&seed.user_data);
    out.seed = Some(seed.clone());
    // power_state_change runs last, once per instance, whatever phone_home did.
    out.powered_off = !again && powers_off(&seed.user_data);
    if again {
        // cloud-init's per-instance modules ran at this instance's first boot.
        out.phone_home.clone_from(&previous_post(fleet, index));
        return out;
    }
    let Some((target, tries)) = phone_home else {
        return out;
    };
    let host_key = match host_key(seed.local_hostname.as_deref().unwrap_or("localhost")) {
        Ok(k) => k,
        Err(error) => {
            out.error = Some(error);
            return out;
        }
    };
    let form = form(&host_key, &seed);
    let mut post = PhoneHomePost {
        url: target.clone(),
        host_key,
        address: address.map_or_else(|| fleet.config.bind.to_string(), |a| a.to_string()),
        status: None,
    };
    for attempt in 1..=tries {
        match http
            .post(&target)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await
        {
            Ok(answer) if !answer.status().is_server_error() => {
                post.status = Some(answer.status().as_u16());
                break;
            }
            Ok(answer) => post.status = Some(answer.status().as_u16()),
            Err(e) => out.error = Some(format!("phone home: {}", e.without_url())),
        }
        if attempt < tries {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    if post.status.is_some() {
        out.error = None;
    }
    out.phone_home = Some(post);
    out
}

fn previous_post(fleet: &Fleet, index: usize) -> Option<PhoneHomePost> {
    fleet
        .host(index)?
        .bmc()
        .state(fleet.now())
        .playback?
        .phone_home
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut answer = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetching the seed: {}", e.without_url()))?;
    if !answer.status().is_success() {
        return Err(format!("fetching the seed: HTTP {}", answer.status()));
    }
    let mut image = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| format!("fetching the seed: {}", e.without_url()))?
    {
        if image.len() + chunk.len() > MAX_SEED_BYTES {
            return Err(format!("the seed is larger than {MAX_SEED_BYTES} bytes"));
        }
        image.extend_from_slice(&chunk);
    }
    Ok(image)
}

/// The NoCloud files of a `cidata` image.
pub(crate) fn read_seed(image: &[u8]) -> Result<SeedRead, String> {
    let image = labpods_cidata::read(image).map_err(|e| format!("reading the seed: {e}"))?;
    let text = |name: &str| {
        image
            .file(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let meta_data = text("meta-data").ok_or("the seed has no meta-data")?;
    let meta: Value = serde_yaml::from_str(&meta_data).unwrap_or(Value::Null);
    let field = |name: &str| meta.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(SeedRead {
        instance_id: field("instance-id"),
        local_hostname: field("local-hostname"),
        meta_data,
        user_data: text("user-data").unwrap_or_default(),
        network_config: text("network-config"),
    })
}

/// `phone_home.url` and `tries` of the user data's cloud-config: a `#cloud-config` document,
/// or the `text/cloud-config` parts of a MIME multipart (the last one that has it wins, as
/// cloud-init merges parts in order).
pub(crate) fn phone_home_config(user_data: &str) -> Option<(String, u64)> {
    cloud_configs(user_data)
        .iter()
        .filter_map(|doc| {
            let config: Value = serde_yaml::from_str(doc).ok()?;
            let phone = config.get("phone_home")?;
            let url = phone.get("url")?.as_str()?.to_owned();
            let tries = phone.get("tries").and_then(Value::as_u64).unwrap_or(10);
            Some((url, tries.clamp(1, MAX_TRIES)))
        })
        .next_back()
}

/// Whether the cloud-config asks for `power_state: {mode: poweroff}` (the last part that
/// sets `power_state` wins).
pub(crate) fn powers_off(user_data: &str) -> bool {
    cloud_configs(user_data)
        .iter()
        .filter_map(|doc| {
            let config: Value = serde_yaml::from_str(doc).ok()?;
            let mode = config.get("power_state")?.get("mode")?.as_str()?.to_owned();
            Some(mode == "poweroff")
        })
        .next_back()
        .unwrap_or(false)
}

fn cloud_configs(user_data: &str) -> Vec<String> {
    if user_data.starts_with("#cloud-config") {
        return vec![user_data.to_owned()];
    }
    let Some(boundary) = user_data
        .lines()
        .next()
        .filter(|l| {
            l.to_ascii_lowercase()
                .starts_with("content-type: multipart/")
        })
        .and_then(|l| l.split("boundary=").nth(1))
        .map(|b| b.trim().trim_matches('"').to_owned())
    else {
        return Vec::new();
    };
    user_data
        .split(&format!("--{boundary}"))
        .filter_map(|part| {
            let (headers, body) = part.trim_start_matches('\n').split_once("\n\n")?;
            let headers = headers.to_ascii_lowercase();
            if !headers.contains("content-type: text/cloud-config") {
                return None;
            }
            if headers.contains("content-transfer-encoding: base64") {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8(STANDARD.decode(compact).ok()?).ok()
            } else {
                Some(body.to_owned())
            }
        })
        .collect()
}

/// A fresh ed25519 host key as OpenSSH prints it: `ssh-ed25519 <base64 of string
/// "ssh-ed25519", string key> root@<hostname>`.
pub(crate) fn host_key(hostname: &str) -> Result<String, String> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
    Ok(openssh_line(pair.public_key().as_ref(), hostname))
}

fn openssh_line(public_key: &[u8], hostname: &str) -> String {
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), public_key] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
        blob.extend_from_slice(part);
    }
    format!("ssh-ed25519 {} root@{hostname}", STANDARD.encode(blob))
}

/// The form cloud-init posts for `post: [pub_key_rsa, pub_key_ecdsa, pub_key_ed25519,
/// instance_id, hostname, fqdn]`: `N/A` for the keys this host has not.
fn form(host_key: &str, seed: &SeedRead) -> String {
    let hostname = seed.local_hostname.as_deref().unwrap_or("N/A");
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("pub_key_rsa", "N/A")
        .append_pair("pub_key_ecdsa", "N/A")
        .append_pair("pub_key_ed25519", host_key)
        .append_pair("instance_id", seed.instance_id.as_deref().unwrap_or("N/A"))
        .append_pair("hostname", hostname)
        .append_pair("fqdn", hostname)
        .finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn host_keys_are_openssh_ed25519_lines() {
        let key = host_key("node-1").unwrap();
        let mut parts = key.split(' ');
        assert_eq!(parts.next(), Some("ssh-ed25519"));
        let blob = STANDARD.decode(parts.next().unwrap()).unwrap();
        assert_eq!(&blob[..4], &[0, 0, 0, 11]);
        assert_eq!(&blob[4..15], b"ssh-ed25519");
        assert_eq!(&blob[15..19], &[0, 0, 0, 32]);
        assert_eq!(blob.len(), 19 + 32);
        assert_eq!(parts.next(), Some("root@node-1"));
        assert_ne!(key, host_key("node-1").unwrap(), "a fresh key each time");
    }

    #[test]
    fn phone_home_is_read_from_cloud_config_and_multipart() {
        let plain =
            "#cloud-config\nphone_home:\n  url: http://op/phone-home/h?token=t\n  tries: 3\n";
        assert_eq!(
            phone_home_config(plain),
            Some(("http://op/phone-home/h?token=t".into(), 3))
        );
        let ours = STANDARD.encode("#cloud-config\nphone_home:\n  url: http://op/x\n");
        let multipart = format!(
            "Content-Type: multipart/mixed; boundary=\"b1\"\nMIME-Version: 1.0\n\n--b1\n\
             Content-Type: text/x-shellscript\nContent-Transfer-Encoding: base64\n\n{}\n--b1\n\
             Content-Type: text/cloud-config; charset=\"utf-8\"\nContent-Transfer-Encoding: base64\n\n{ours}\n--b1--\n",
            STANDARD.encode("#!/bin/sh\necho hi\n")
        );
        assert_eq!(
            phone_home_config(&multipart),
            Some(("http://op/x".into(), 10))
        );
        assert_eq!(phone_home_config("#!/bin/sh\n"), None);
        assert!(!powers_off(plain));
        assert!(powers_off(
            "#cloud-config\npower_state:\n  mode: poweroff\n  message: bye\n"
        ));
        assert!(!powers_off("#cloud-config\npower_state:\n  mode: reboot\n"));
        assert_eq!(phone_home_config("#cloud-config\npackages: [vim]\n"), None);
    }

    #[test]
    fn a_seed_image_reads_back_its_files() {
        let image = labpods_cidata::write(
            &[
                labpods_cidata::File {
                    name: "meta-data",
                    data: b"instance-id: i-1\nlocal-hostname: node-2\n",
                },
                labpods_cidata::File {
                    name: "user-data",
                    data: b"#cloud-config\n",
                },
            ],
            1_800_000_000,
        )
        .unwrap();
        let seed = read_seed(&image).unwrap();
        assert_eq!(seed.instance_id.as_deref(), Some("i-1"));
        assert_eq!(seed.local_hostname.as_deref(), Some("node-2"));
        assert_eq!(seed.user_data, "#cloud-config\n");
        assert_eq!(seed.network_config, None);
        let form = form("ssh-ed25519 AAAA root@node-2", &seed);
        assert!(form.contains("instance_id=i-1&hostname=node-2"), "{form}");
        assert!(form.contains("pub_key_ed25519=ssh-ed25519+AAAA"), "{form}");
        assert!(read_seed(b"not an image").is_err());
    }

    #[test]
    fn hosts_post_from_their_own_loopback_address() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(
            host_address(lo, 258),
            Some(IpAddr::V4(Ipv4Addr::new(127, 100, 1, 2)))
        );
        assert_eq!(host_address(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1), None);
    }
}
