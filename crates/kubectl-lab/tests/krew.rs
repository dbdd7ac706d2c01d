//! The krew manifest installs the binary this crate builds, under the name `kubectl lab`.

use std::path::Path;

#[test]
fn krew_manifest_names_the_plugin_lab_and_ships_the_built_binary() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("krew/lab.yaml"))
        .expect("krew/lab.yaml");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(
        manifest["metadata"]["name"], "lab",
        "krew installs it as `kubectl lab`"
    );
    let built = Path::new(env!("CARGO_BIN_EXE_kubectl-lab"));
    let name = built
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a binary name");
    let platforms = manifest["spec"]["platforms"]
        .as_sequence()
        .expect("platforms");
    assert!(!platforms.is_empty());
    for platform in platforms {
        assert_eq!(platform["bin"], name);
        let files = platform["files"].as_sequence().expect("files");
        assert!(files.iter().any(|f| f["from"] == name), "{platform:?}");
    }
}
