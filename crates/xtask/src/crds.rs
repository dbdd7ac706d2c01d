//! `cargo xtask crds [--check]`: write the CRD YAML in `crds/` from the Rust types, or with
//! `--check` fail when a committed file differs from what the types generate.

use std::fs;

use anyhow::{Context, Result, bail};

use crate::workspace_root;

pub fn run(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        other => bail!("usage: cargo xtask crds [--check] (got {other:?})"),
    };
    let dir = workspace_root().join("crds");
    let files = labpods_api::crd_files().context("rendering the CRDs as YAML")?;
    let mut drifted = Vec::new();
    for file in &files {
        let path = dir.join(&file.file_name);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current == file.yaml {
            continue;
        }
        if check {
            drifted.push(format!("crds/{}", file.file_name));
        } else {
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::write(&path, &file.yaml).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote crds/{}", file.file_name);
        }
    }
    // A file no type generates any more (a removed or renamed kind) is drift too.
    let generated: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !generated.contains(&name.as_str()) {
            if check {
                drifted.push(format!("crds/{name} (no longer generated)"));
            } else {
                fs::remove_file(dir.join(&name))
                    .with_context(|| format!("removing crds/{name}"))?;
                println!("removed crds/{name}");
            }
        }
    }
    if !drifted.is_empty() {
        bail!(
            "CRD YAML differs from the Rust types in crates/labpods-api: {}\nrun `cargo xtask crds` and commit the result",
            drifted.join(", ")
        );
    }
    if check {
        println!("crds/ is up to date ({} files)", files.len());
    }
    Ok(())
}
