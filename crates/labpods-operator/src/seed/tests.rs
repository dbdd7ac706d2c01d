#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use labpods_api::v1alpha1::UserDataSecretRef;

use super::*;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH alice@laptop";

fn phone() -> Url {
    Url::parse("http://10.0.0.5:8081/phone-home/node-01?token=t0k").unwrap()
}

fn input<'a>(keys: &'a [String], user_data: Option<&'a [u8]>, url: &'a Url) -> SeedInput<'a> {
    SeedInput {
        instance_id: "labpods-uid-1-node-01-1800000000",
        hostname: "node-1",
        ssh_authorized_keys: keys,
        user_data,
        network_config: None,
        phone_home: Some(url),
    }
}

fn config(user_data: &[u8]) -> Mapping {
    let text = std::str::from_utf8(user_data).unwrap();
    assert!(text.starts_with("#cloud-config\n"), "{text}");
    serde_yaml::from_str(text).unwrap()
}

fn phone_home_of(c: &Mapping) -> Value {
    c.get("phone_home").cloned().unwrap()
}

#[test]
fn without_user_data_the_seed_holds_keys_phone_home_and_the_hostname() {
    let keys = vec![KEY.to_owned()];
    let url = phone();
    let seed = render(&input(&keys, None, &url)).unwrap();
    let meta: Mapping = serde_yaml::from_str(&seed.meta_data).unwrap();
    assert_eq!(
        meta.get("instance-id"),
        Some(&Value::from("labpods-uid-1-node-01-1800000000"))
    );
    assert_eq!(meta.get("local-hostname"), Some(&Value::from("node-1")));
    let c = config(&seed.user_data);
    assert_eq!(
        c.get("ssh_authorized_keys"),
        Some(&Value::Sequence(vec![KEY.into()]))
    );
    let p = phone_home_of(&c);
    assert_eq!(p.get("url"), Some(&Value::from(url.as_str())));
    let post: Vec<&str> = p["post"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(post, PHONE_HOME_POST);
    assert_eq!(seed.network_config, None);
}

#[test]
fn cloud_config_user_data_keeps_its_own_and_gets_the_keys_and_our_phone_home() {
    let keys = vec![KEY.to_owned(), "ssh-ed25519 AAAAother bob".to_owned()];
    let url = phone();
    let theirs = format!(
        "#cloud-config\npackages: [git]\nssh_authorized_keys:\n  - ssh-rsa AAAAtheirs carol\n  - {KEY}\nphone_home:\n  url: http://evil.example/\n"
    );
    let seed = render(&input(&keys, Some(theirs.as_bytes()), &url)).unwrap();
    let c = config(&seed.user_data);
    assert_eq!(
        c.get("packages"),
        Some(&Value::Sequence(vec!["git".into()]))
    );
    let merged: Vec<&str> = c["ssh_authorized_keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        merged,
        ["ssh-rsa AAAAtheirs carol", KEY, "ssh-ed25519 AAAAother bob"]
    );
    assert_eq!(
        phone_home_of(&c).get("url"),
        Some(&Value::from(url.as_str()))
    );
    // An empty cloud-config is fine too.
    let empty = render(&input(&keys, Some(b"#cloud-config\n"), &url)).unwrap();
    assert!(config(&empty.user_data).contains_key("phone_home"));
}

/// The parts of a multipart user data, as cloud-init's MIME walk sees them: (headers, body).
fn parts(user_data: &[u8]) -> Vec<(String, String)> {
    let text = std::str::from_utf8(user_data).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    assert!(
        head.starts_with("Content-Type: multipart/mixed; boundary=\""),
        "{head}"
    );
    let boundary = head.split('"').nth(1).unwrap();
    let end = format!("--{boundary}--\n");
    assert!(body.ends_with(&end), "{body}");
    body.trim_end_matches(&end)
        .split(&format!("--{boundary}\n"))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (h, b) = p.split_once("\n\n").unwrap();
            (h.to_owned(), b.trim_end().to_owned())
        })
        .collect()
}

fn decoded(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64.replace('\n', "")).unwrap()
}

#[test]
fn a_script_goes_beside_our_cloud_config_in_a_multipart() {
    let keys = vec![KEY.to_owned()];
    let url = phone();
    let script = b"#!/bin/sh\necho hello > /tmp/hello\n";
    let seed = render(&input(&keys, Some(script), &url)).unwrap();
    let parts = parts(&seed.user_data);
    assert_eq!(parts.len(), 2);
    assert!(
        parts[0].0.starts_with("Content-Type: text/x-shellscript"),
        "{}",
        parts[0].0
    );
    assert_eq!(decoded(&parts[0].1), script);
    assert!(
        parts[1].0.starts_with("Content-Type: text/cloud-config"),
        "{}",
        parts[1].0
    );
    let c = config(&decoded(&parts[1].1));
    assert_eq!(
        phone_home_of(&c).get("url"),
        Some(&Value::from(url.as_str()))
    );
    assert_eq!(
        c.get("ssh_authorized_keys"),
        Some(&Value::Sequence(vec![KEY.into()]))
    );
}

#[test]
fn a_multipart_of_theirs_is_nested_as_it_is() {
    let keys = vec![];
    let url = phone();
    let theirs = b"Content-Type: multipart/mixed; boundary=\"X\"\nMIME-Version: 1.0\n\n--X\nContent-Type: text/x-shellscript\n\n#!/bin/sh\ntrue\n--X--\n";
    let seed = render(&input(&keys, Some(theirs), &url)).unwrap();
    let parts = parts(&seed.user_data);
    assert_eq!(parts.len(), 2);
    let nested = format!("{}\n\n{}", parts[0].0, parts[0].1);
    assert_eq!(
        nested.trim_end(),
        std::str::from_utf8(theirs).unwrap().trim_end()
    );
    assert!(parts[1].0.starts_with("Content-Type: text/cloud-config"));
}

#[test]
fn bad_user_data_is_refused_naming_the_field_not_repeating_it() {
    let url = phone();
    let huge = vec![b'#'; MAX_USER_DATA_BYTES + 1];
    let err = render(&input(&[], Some(&huge), &url)).unwrap_err();
    assert_eq!(err, SeedError::TooLarge(MAX_USER_DATA_BYTES + 1));
    let broken = b"#cloud-config\npassword: hunter2\n  bad: [indent\n";
    let err = render(&input(&[], Some(broken), &url)).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with(USER_DATA_FIELD), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let list = b"#cloud-config\n- a\n";
    assert!(matches!(
        render(&input(&[], Some(list), &url)),
        Err(SeedError::NotAMapping(_))
    ));
}

#[test]
fn a_roles_access_replaces_the_requests_field_by_field() {
    let request = AccessSpec {
        ssh_authorized_keys: vec![KEY.into()],
        user_data_secret_ref: Some(UserDataSecretRef {
            name: "pod-data".into(),
            key: None,
        }),
        network_data: Some("version: 2\n".into()),
    };
    let role = AccessSpec {
        user_data_secret_ref: Some(UserDataSecretRef {
            name: "jumphost-data".into(),
            key: Some("cloud".into()),
        }),
        ..AccessSpec::default()
    };
    let effective = effective_access(Some(&request), Some(&role));
    assert_eq!(effective.ssh_authorized_keys, request.ssh_authorized_keys);
    assert_eq!(effective.user_data_secret_ref, role.user_data_secret_ref);
    assert_eq!(effective.network_data, request.network_data);
    assert_eq!(effective_access(Some(&request), None), request);
    assert_eq!(effective_access(None, Some(&role)), role);
    assert_eq!(effective_access(None, None), AccessSpec::default());
}

#[test]
fn the_seed_image_reads_back_with_cloud_inits_file_names() {
    let keys = vec![KEY.to_owned()];
    let url = phone();
    let mut i = input(&keys, None, &url);
    i.network_config = Some("version: 2\nethernets: {}\n");
    let seed = render(&i).unwrap();
    let image = labpods_cidata::read(&seed.image(1_800_000_000).unwrap()).unwrap();
    assert_eq!(image.volume_id, "cidata");
    assert_eq!(image.file("meta-data"), Some(seed.meta_data.as_bytes()));
    assert_eq!(image.file("user-data"), Some(seed.user_data.as_slice()));
    assert_eq!(
        image.file("network-config"),
        Some(&b"version: 2\nethernets: {}\n"[..])
    );
    assert_eq!(
        instance_id("uid-1", "node-01", 5),
        "labpods-uid-1-node-01-5"
    );
}

#[test]
fn a_wipe_seed_holds_only_the_runs_phone_home_and_a_power_off() {
    let url = phone();
    let seed = wipe("labpods-host-uid-node-01-1800000300", "node-01", &url);
    let meta: Mapping = serde_yaml::from_str(&seed.meta_data).unwrap();
    assert_eq!(
        meta.get("instance-id").and_then(Value::as_str),
        Some("labpods-host-uid-node-01-1800000300")
    );
    let c = config(&seed.user_data);
    let keys: Vec<&str> = c.keys().filter_map(Value::as_str).collect();
    assert_eq!(keys, ["phone_home", "power_state"], "nothing of a booking");
    assert_eq!(
        phone_home_of(&c).get("url").and_then(Value::as_str),
        Some(url.as_str())
    );
    let power = c.get("power_state").unwrap();
    assert_eq!(power.get("mode").and_then(Value::as_str), Some("poweroff"));
    assert_eq!(seed.network_config, None);
    assert!(!seed.image(1_800_000_300).unwrap().is_empty());
}
