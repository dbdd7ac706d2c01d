//! The access Secret's content (pure): an OpenSSH `known_hosts` built from the host keys the
//! booted hosts reported, and an `ssh_config` with one `Host` block per reachable host that
//! pins the key (`HostKeyAlias`, `StrictHostKeyChecking yes`), so the first `ssh` is
//! verified instead of trust-on-first-use.
//!
//! A report comes from a booted OS the tenant controls, so nothing of it reaches the files
//! unchecked: only IP addresses and well-formed single-line public keys are written (a
//! newline or a directive smuggled in a report would otherwise become a config line).

use std::collections::BTreeMap;
use std::net::IpAddr;

use labpods_api::v1alpha1::AssignedHost;
use labpods_api::validation::rules::is_ssh_public_key_line;

/// Key of the `known_hosts` file in the Secret.
pub const KNOWN_HOSTS: &str = "known_hosts";
/// Key of the `ssh_config` file in the Secret.
pub const SSH_CONFIG: &str = "ssh_config";

/// The access Secret's name for request `name`.
pub fn secret_name(name: &str) -> String {
    format!("{name}-access")
}

/// Where `ssh_config` expects `known_hosts`: a directory per booking under `~/.ssh`, so
/// both files can be saved side by side and several bookings do not collide. `kubectl lab
/// ssh` overrides it with its own temporary directory.
pub fn known_hosts_path(namespace: &str, name: &str) -> String {
    format!("~/.ssh/labpods/{namespace}/{name}/{KNOWN_HOSTS}")
}

/// A host that can be reached and verified: its hostname, checked addresses and keys.
struct Reachable<'a> {
    hostname: &'a str,
    addresses: Vec<IpAddr>,
    keys: Vec<&'a str>,
}

fn reachable(host: &AssignedHost) -> Option<Reachable<'_>> {
    let hostname = host.hostname.as_deref()?;
    let addresses: Vec<IpAddr> = host
        .addresses
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let keys: Vec<&str> = host
        .host_keys
        .iter()
        .map(String::as_str)
        .filter(|k| is_ssh_public_key_line(k))
        .collect();
    (!addresses.is_empty() && !keys.is_empty()).then_some(Reachable {
        hostname,
        addresses,
        keys,
    })
}

/// The Secret's files for the hosts of request `namespace/name`; `None` until some host
/// reported an address and a host key.
pub fn files(
    namespace: &str,
    name: &str,
    hosts: &[AssignedHost],
) -> Option<BTreeMap<String, String>> {
    let hosts: Vec<Reachable<'_>> = hosts.iter().filter_map(reachable).collect();
    if hosts.is_empty() {
        return None;
    }
    let mut known_hosts = String::new();
    let mut ssh_config = format!(
        "# labpods: booking {namespace}/{name}. Host keys are pinned from what each host reported at boot.\n"
    );
    let known_hosts_file = known_hosts_path(namespace, name);
    for host in &hosts {
        let names: Vec<String> = std::iter::once(host.hostname.to_owned())
            .chain(host.addresses.iter().map(ToString::to_string))
            .collect();
        for key in &host.keys {
            // `<type> <base64>` only: a comment adds nothing to a known_hosts line.
            let key: Vec<&str> = key.splitn(3, ' ').take(2).collect();
            known_hosts.push_str(&format!("{} {}\n", names.join(","), key.join(" ")));
        }
        ssh_config.push_str(&format!(
            "\nHost {hostname}\n    HostName {address}\n    HostKeyAlias {hostname}\n    StrictHostKeyChecking yes\n    UserKnownHostsFile {known_hosts_file}\n",
            hostname = host.hostname,
            address = host.addresses[0],
        ));
    }
    Some(BTreeMap::from([
        (KNOWN_HOSTS.to_owned(), known_hosts),
        (SSH_CONFIG.to_owned(), ssh_config),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV root@node-1";

    fn host(hostname: &str, addresses: &[&str], keys: &[&str]) -> AssignedHost {
        AssignedHost {
            role: "node".into(),
            host: format!("lab-{hostname}"),
            hostname: Some(hostname.into()),
            addresses: addresses.iter().map(|&a| a.into()).collect(),
            host_keys: keys.iter().map(|&k| k.into()).collect(),
            ..AssignedHost::default()
        }
    }

    #[test]
    fn known_hosts_and_ssh_config_pin_each_reported_key() {
        let files = files(
            "team",
            "pod",
            &[
                host("node-1", &["10.1.0.5", "fd00::5"], &[KEY]),
                host("node-2", &[], &[]),
            ],
        )
        .unwrap_or_default();
        assert_eq!(
            files[KNOWN_HOSTS],
            "node-1,10.1.0.5,fd00::5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV\n"
        );
        let config = &files[SSH_CONFIG];
        assert!(
            config.contains(
                "Host node-1\n    HostName 10.1.0.5\n    HostKeyAlias node-1\n    StrictHostKeyChecking yes\n    UserKnownHostsFile ~/.ssh/labpods/team/pod/known_hosts\n"
            ),
            "{config}"
        );
        assert!(
            !config.contains("node-2"),
            "a host that has not reported is left out"
        );
    }

    #[test]
    fn nothing_until_a_host_reported_an_address_and_a_key() {
        assert_eq!(
            files("team", "pod", &[host("node-1", &["10.1.0.5"], &[])]),
            None
        );
        assert_eq!(files("team", "pod", &[host("node-1", &[], &[KEY])]), None);
    }

    #[test]
    fn a_hostile_report_cannot_add_lines() {
        let files = files(
            "team",
            "pod",
            &[host(
                "node-1",
                &["10.1.0.5\n    ProxyCommand sh -c evil", "10.1.0.6"],
                &[
                    &format!("{KEY}\n* ssh-ed25519 AAAA"),
                    KEY,
                    "ssh-ed25519 AAAA\r",
                ],
            )],
        )
        .unwrap_or_default();
        assert!(!files[SSH_CONFIG].contains("ProxyCommand"));
        assert!(files[SSH_CONFIG].contains("HostName 10.1.0.6\n"));
        assert_eq!(
            files[KNOWN_HOSTS].lines().count(),
            1,
            "{}",
            files[KNOWN_HOSTS]
        );
    }
}
