//! The CRD YAML committed under `crds/` must be exactly what the types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crds");
    let mut drifted = Vec::new();
    for file in labpods_api::crd_files().expect("CRDs render as YAML") {
        let path = dir.join(&file.file_name);
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == file.yaml => {}
            Ok(_) => drifted.push(format!("crds/{} differs", file.file_name)),
            Err(e) => drifted.push(format!("crds/{} unreadable: {e}", file.file_name)),
        }
    }
    assert!(
        drifted.is_empty(),
        "{}\nThe CRD YAML is out of date with crates/labpods-api: run `cargo xtask crds` and commit crds/.",
        drifted.join("\n")
    );
}
