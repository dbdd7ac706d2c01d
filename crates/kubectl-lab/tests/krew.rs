//! The krew manifest installs the binary this crate builds, under the name `kubectl lab`,
//! with files the repository has, and tells krew's index what every subcommand does.

use std::path::Path;

use clap::CommandFactory;

fn manifest() -> serde_yaml::Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("krew/lab.yaml"))
        .expect("krew/lab.yaml");
    serde_yaml::from_str(&text).expect("valid YAML")
}

#[test]
fn krew_manifest_names_the_plugin_lab_and_ships_the_built_binary() {
    let manifest = manifest();
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

/// The release job packs each archive from the built binaries and the repository root:
/// every other file the manifest ships (LICENSE) must be there.
#[test]
fn krew_manifest_ships_only_files_the_repository_has() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest = manifest();
    let platforms = manifest["spec"]["platforms"]
        .as_sequence()
        .expect("platforms");
    for platform in platforms {
        for file in platform["files"].as_sequence().expect("files") {
            let from = file["from"].as_str().expect("files[].from");
            let built = [
                env!("CARGO_BIN_EXE_kubectl-lab"),
                env!("CARGO_BIN_EXE_kubectl_complete-lab"),
            ]
            .iter()
            .any(|bin| Path::new(bin).file_name().is_some_and(|n| n == from));
            if !built {
                assert!(
                    root.join(from).is_file(),
                    "the manifest ships {from}, which the repository root does not have"
                );
            }
        }
    }
    let license = std::fs::read_to_string(root.join("LICENSE")).expect("LICENSE");
    assert!(
        license.contains("Apache License") && license.contains("Version 2.0, January 2004"),
        "the workspace's license is Apache-2.0"
    );
}

#[test]
fn krew_manifest_description_names_every_subcommand() {
    let manifest = manifest();
    let description = manifest["spec"]["description"]
        .as_str()
        .expect("spec.description");
    let named: Vec<&str> = description
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for sub in kubectl_lab::Cli::command().get_subcommands() {
        // Completion is in the caveats, where krew shows it after installing.
        if sub.get_name() == "completion" {
            continue;
        }
        assert!(
            named.contains(&sub.get_name()),
            "spec.description does not list `{}`:\n{description}",
            sub.get_name()
        );
    }
}
