//! The pure crates stay pure: what the operator decides (the scheduler, the provisioning
//! state machines, the LabHost and Lease plans) builds without a kube client, an async
//! runtime or an HTTP stack, so none of it can do IO. A dependency that would let it fails
//! here, naming the chain that brought it in.

use std::path::Path;

/// Crates that do IO: a Kubernetes client or runtime, an async runtime, HTTP or TLS.
const IO_CRATES: &[&str] = &[
    "kube",
    "kube-client",
    "kube-runtime",
    "tokio",
    "hyper",
    "hyper-util",
    "reqwest",
    "tower",
    "h2",
    "rustls",
    "axum",
];

/// The crates `package` needs to build (normal dependencies, features as it asks them).
fn dependencies(package: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = labpods_tests::nested_cargo::command()
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}"])
        .current_dir(&root)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_pure(package: &str) {
    let deps = dependencies(package);
    assert!(
        deps.iter().any(|d| d == package),
        "cargo tree did not list {package} itself: {deps:?}"
    );
    let io: Vec<&String> = deps
        .iter()
        .filter(|d| IO_CRATES.contains(&d.as_str()))
        .collect();
    assert!(
        io.is_empty(),
        "{package} must not depend on {io:?}; see which dependency brings them with \
         `cargo tree -p {package} -e normal -i <crate>`"
    );
}

#[test]
fn core_builds_without_kube_client_runtime_or_http() {
    assert_pure("labpods-core");
}

#[test]
fn scheduler_builds_without_kube_client_runtime_or_http() {
    assert_pure("labpods-scheduler");
}

/// The same check run on the operator finds its IO crates: the list above names real ones.
#[test]
fn the_check_finds_the_operators_io_crates() {
    let deps = dependencies("labpods-operator");
    for expected in ["kube", "tokio", "hyper", "reqwest"] {
        assert!(
            deps.iter().any(|d| d == expected),
            "labpods-operator's tree lacks {expected}: {deps:?}"
        );
    }
}
