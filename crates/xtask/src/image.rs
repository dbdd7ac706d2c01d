//! `cargo xtask image [--out DIR]`: the OCI image of the release `labpods` binary, written
//! as an OCI image layout directory without a container engine (none runs on these
//! machines). Push it with `crane push DIR ghcr.io/labpods/labpods:<version>`.
//!
//! One uncompressed layer (the binary stripped of its line tables) (no compression crate needed, and the digest depends on nothing
//! but the bytes): the binary, the shared libraries it links (ldd: glibc's loader, libc,
//! libm, libgcc_s), the CA certificates (rustls reads the system roots) and /etc/passwd
//! and /etc/group with the non-root user 65532. No shell, no package manager. Reproducible:
//! entries sorted, every mtime SOURCE_DATE_EPOCH (default 0), owners 0, fixed modes, so the
//! same binary and libraries give the same digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the image is published; the chart's default (values.yaml image.repository, tag =
/// Chart.yaml appVersion) names the same.
pub const REPOSITORY: &str = "ghcr.io/labpods/labpods";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const USER: &str = "65532:65532";
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

pub fn run(args: &[String]) -> Result<()> {
    let root = crate::workspace_root();
    let out = match args {
        [] => root.join("target/image/labpods"),
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask image [--out DIR]"),
    };
    let binary = build_release(&root)?;
    let epoch: u64 = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .map(|s| s.parse())
        .transpose()
        .context("SOURCE_DATE_EPOCH is not a number of seconds")?
        .unwrap_or(0);
    let files = contents(&binary)?;
    let layer = tar(&files, epoch)?;
    let digest = write_layout(&out, &layer, epoch)?;
    println!("image {REPOSITORY}:{VERSION}");
    println!("digest {digest}");
    println!("layout {}", out.display());
    Ok(())
}

/// `cargo build --release` of the labpods binary; its path.
pub fn build_release(root: &Path) -> Result<PathBuf> {
    let status = crate::testenv::cargo()
        .args([
            "build",
            "--release",
            "--package",
            "labpods-operator",
            "--bin",
            "labpods",
        ])
        .current_dir(root)
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release -p labpods-operator failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/labpods"))
}

/// A file of the image: its bytes and mode.
struct Entry {
    data: Vec<u8>,
    mode: u32,
}

/// Path in the image (no leading /) -> file.
fn contents(binary: &Path) -> Result<BTreeMap<String, Entry>> {
    let mut files = BTreeMap::new();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    // The release profile keeps line tables (for backtraces in development): strip them,
    // a quarter of the size. strip is deterministic, so the digest stays reproducible.
    let stripped = binary.with_extension("stripped");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(binary)
        .status()
        .context("running strip (binutils)")?;
    if !status.success() {
        bail!("strip {} failed ({status})", binary.display());
    }
    files.insert(
        "usr/bin/labpods".to_string(),
        Entry {
            data: read(&stripped)?,
            mode: 0o755,
        },
    );
    for library in linked_libraries(binary)? {
        // The path the dynamic loader looks for (the ELF interpreter is /lib64/...).
        let data = read(&std::fs::canonicalize(&library)?)?;
        let name = library
            .to_string_lossy()
            .trim_start_matches('/')
            .to_string();
        files.insert(name, Entry { data, mode: 0o755 });
    }
    files.insert(
        CA_BUNDLE.trim_start_matches('/').to_string(),
        Entry {
            data: read(Path::new(CA_BUNDLE))
                .context("the CA certificates (apt-get install ca-certificates)")?,
            mode: 0o644,
        },
    );
    files.insert(
        "etc/passwd".into(),
        Entry {
            data: b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n".to_vec(),
            mode: 0o644,
        },
    );
    files.insert(
        "etc/group".into(),
        Entry {
            data: b"root:x:0:\nnonroot:x:65532:\n".to_vec(),
            mode: 0o644,
        },
    );
    Ok(files)
}

/// What `ldd` says the binary loads (absolute paths; the vDSO has none).
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .stderr(Stdio::inherit())
        .output()
        .context("running ldd")?;
    if !output.status.success() {
        bail!("ldd {} failed", binary.display());
    }
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(path));
        }
    }
    if out.is_empty() {
        bail!("ldd found no libraries in {}", binary.display());
    }
    Ok(out)
}

/// A ustar header block.
fn header(name: &str, size: u64, mode: u32, kind: u8, mtime: u64) -> Result<[u8; 512]> {
    let mut h = [0u8; 512];
    if name.len() > 100 {
        bail!("path {name} is longer than a ustar name");
    }
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, value: u64| {
        let text = format!("{value:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(text.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0); // uid
    octal(&mut h, 116, 8, 0); // gid
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, mtime);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    Ok(h)
}

/// The layer: every parent directory, then the files, in path order.
fn tar(files: &BTreeMap<String, Entry>, mtime: u64) -> Result<Vec<u8>> {
    let mut entries: BTreeMap<String, Option<&Entry>> = BTreeMap::new();
    for path in files.keys() {
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            entries.insert(format!("{}/", d.display()), None);
            dir = d.parent();
        }
    }
    entries.insert("tmp/".into(), None);
    for (path, entry) in files {
        entries.insert(path.clone(), Some(entry));
    }
    let mut out = Vec::new();
    for (path, entry) in entries {
        match entry {
            None => {
                let mode = if path == "tmp/" { 0o1777 } else { 0o755 };
                out.extend_from_slice(&header(&path, 0, mode, b'5', mtime)?);
            }
            Some(file) => {
                let size = file.data.len() as u64;
                out.extend_from_slice(&header(&path, size, file.mode, b'0', mtime)?);
                out.extend_from_slice(&file.data);
                let pad = (512 - file.data.len() % 512) % 512;
                out.extend(std::iter::repeat_n(0u8, pad));
            }
        }
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    Ok(out)
}

fn sha256(data: &[u8]) -> Result<String> {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    child.stdin.take().context("no stdin")?.write_all(data)?;
    let output = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    if !output.status.success() || hex.len() != 64 {
        bail!("sha256sum failed");
    }
    Ok(format!("sha256:{hex}"))
}

fn rfc3339(epoch: u64) -> String {
    let t = i64::try_from(epoch)
        .ok()
        .and_then(|e| chrono::DateTime::from_timestamp(e, 0))
        .unwrap_or_default();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes the OCI layout; returns the manifest's digest.
fn write_layout(out: &Path, layer: &[u8], epoch: u64) -> Result<String> {
    let _ = std::fs::remove_dir_all(out);
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |data: &[u8]| -> Result<String> {
        let digest = sha256(data)?;
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data)?;
        Ok(digest)
    };
    let layer_digest = put(layer)?;
    let created = rfc3339(epoch);
    let labels = format!(
        r#"{{"org.opencontainers.image.created":"{created}","org.opencontainers.image.description":"labpods: a shared bare-metal lab as a service on Kubernetes","org.opencontainers.image.licenses":"Apache-2.0","org.opencontainers.image.source":"https://github.com/labpods/labpods","org.opencontainers.image.title":"labpods","org.opencontainers.image.version":"{VERSION}"}}"#
    );
    let config = format!(
        r#"{{"architecture":"amd64","config":{{"Entrypoint":["/usr/bin/labpods"],"Cmd":["run"],"Env":["SSL_CERT_FILE={CA_BUNDLE}"],"Labels":{labels},"User":"{USER}","WorkingDir":"/"}},"created":"{created}","history":[{{"created":"{created}","created_by":"cargo xtask image"}}],"os":"linux","rootfs":{{"diff_ids":["{layer_digest}"],"type":"layers"}}}}"#
    );
    let config_digest = put(config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}],"annotations":{labels}}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = put(manifest.as_bytes())?;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{VERSION}"}},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(out.join("index.json"), index)?;
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(manifest_digest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
