//! The NoCloud seed images of `labpods-cidata` checked against pycdlib (a Python ISO 9660
//! implementation nobody here wrote, from the tests' venv): what the operator writes reads
//! back there with the Joliet names cloud-init sees, the ISO 9660 level 1 names and the
//! `cidata` volume id; what pycdlib writes (as genisoimage does) reads back here.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use base64::{Engine, engine::general_purpose::STANDARD};
use labpods_cidata::File;
use serde_json::Value;

/// Lists the image's volume ids and both trees' files (name -> base64 content) as JSON, or
/// with `write`, makes an image of the files given as JSON on stdin.
const PYCDLIB: &str = r#"
import base64, io, json, sys
import pycdlib

def listing(iso, **where):
    out = {}
    for child in iso.list_children(**where):
        if child.is_dot() or child.is_dotdot():
            continue
        raw = child.file_identifier()
        name = raw.decode("utf-16_be") if "joliet_path" in where else raw.decode()
        buf = io.BytesIO()
        path = "/" + name
        if "joliet_path" in where:
            iso.get_file_from_iso_fp(buf, joliet_path=path)
        else:
            iso.get_file_from_iso_fp(buf, iso_path=path)
        out[name] = base64.b64encode(buf.getvalue()).decode()
    return out

if sys.argv[1] == "read":
    iso = pycdlib.PyCdlib()
    iso.open(sys.argv[2])
    print(json.dumps({
        "volume_id": iso.pvd.volume_identifier.decode().strip(),
        "joliet_volume_id": iso.joliet_vd.volume_identifier.decode("utf-16_be").strip(),
        "joliet": listing(iso, joliet_path="/"),
        "iso9660": listing(iso, iso_path="/"),
    }))
    iso.close()
else:
    files = json.load(sys.stdin)
    iso = pycdlib.PyCdlib()
    iso.new(joliet=3, vol_ident="cidata")
    for name, data in files.items():
        data = base64.b64decode(data)
        short = name.upper().replace("-", "_")[:8] + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), "/" + short, joliet_path="/" + name)
    iso.write(sys.argv[2])
    iso.close()
"#;

fn python() -> Result<std::path::PathBuf> {
    Ok(labpods_tests::sushy::venv()?.join("bin/python"))
}

fn seed_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "meta-data",
            b"instance-id: labpods-uid-node-01-1800000000\nlocal-hostname: node-1\n".to_vec(),
        ),
        (
            "user-data",
            b"#cloud-config\nssh_authorized_keys: [ssh-ed25519 AAAA alice]\n".to_vec(),
        ),
        // More than a sector, not a multiple of one.
        (
            "network-config",
            format!("version: 2\n{}", "# padding\n".repeat(500)).into_bytes(),
        ),
    ]
}

#[test]
fn seed_images_read_back_in_pycdlib_with_joliet_names_and_volume_id_cidata() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cidata.iso");
    let files = seed_files();
    let entries: Vec<File<'_>> = files
        .iter()
        .map(|(name, data)| File { name, data })
        .collect();
    std::fs::write(&path, labpods_cidata::write(&entries, 1_800_000_000)?)?;

    let out = Command::new(python()?)
        .args(["-c", PYCDLIB, "read"])
        .arg(&path)
        .output()
        .context("running pycdlib")?;
    ensure!(
        out.status.success(),
        "pycdlib could not read the image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(listing["volume_id"] == "cidata", "{listing}");
    ensure!(listing["joliet_volume_id"] == "cidata", "{listing}");
    let decode = |tree: &Value| -> Result<BTreeMap<String, Vec<u8>>> {
        tree.as_object()
            .context("no listing")?
            .iter()
            .map(|(k, v)| Ok((k.clone(), STANDARD.decode(v.as_str().unwrap_or_default())?)))
            .collect()
    };
    let want: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(n, d)| ((*n).to_owned(), d.clone()))
        .collect();
    ensure!(
        decode(&listing["joliet"])? == want,
        "Joliet tree: {listing}"
    );
    let level1: Vec<String> = decode(&listing["iso9660"])?.into_keys().collect();
    ensure!(
        level1 == ["META_DAT.;1", "NETWORK_.;1", "USER_DAT.;1"],
        "ISO 9660 names: {level1:?}"
    );
    Ok(())
}

#[test]
fn images_pycdlib_writes_read_back_here() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cidata.iso");
    let files = seed_files();
    let input: serde_json::Map<String, Value> = files
        .iter()
        .map(|(n, d)| ((*n).to_owned(), Value::from(STANDARD.encode(d))))
        .collect();
    let mut child = Command::new(python()?)
        .args(["-c", PYCDLIB, "write"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running pycdlib")?;
    serde_json::to_writer(child.stdin.take().context("no stdin")?, &input)?;
    ensure!(child.wait()?.success(), "pycdlib could not write an image");

    let image = labpods_cidata::read(&std::fs::read(&path)?)?;
    ensure!(image.volume_id == "cidata", "{:?}", image.volume_id);
    let mut want: Vec<(String, Vec<u8>)> =
        files.into_iter().map(|(n, d)| (n.to_owned(), d)).collect();
    want.sort();
    ensure!(image.files == want, "{:?}", image.files);
    Ok(())
}
