//! The OCI image `cargo xtask image` builds, without a container engine: built twice to the
//! same digest, pushed with crane to go-containerregistry's registry on loopback, its config
//! read back (non-root user, entrypoint, OCI labels), its filesystem pulled and unpacked,
//! and `labpods --version` run from it with the image's own loader and libraries. Its name
//! is the chart's default image.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use labpods_tests::helm::chart_dir;
use labpods_tests::workspace_root;
use serde_json::Value;

/// crane and registry, built from Go modules by the control-plane script.
fn tool(name: &str) -> Result<PathBuf> {
    let script = workspace_root().join("tests/support/build-control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(["newest", "crane", "registry"])
        .stderr(Stdio::inherit())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last() {
        Some(dir) if output.status.success() => Ok(PathBuf::from(dir.trim()).join(name)),
        _ => bail!("{} newest crane registry failed", script.display()),
    }
}

fn ok(output: Output, what: &str) -> Result<String> {
    ensure!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn image_builds_reproducibly_and_runs_from_a_registry_on_loopback() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (reference, digest) = labpods_tests::binaries::build_image(&dir.path().join("a"))?;
    let (_, again) = labpods_tests::binaries::build_image(&dir.path().join("b"))?;
    assert_eq!(digest, again, "two builds of the same binary differ");

    // The chart's default image is what this builds.
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml"))?)?;
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml"))?)?;
    let default = format!(
        "{}:{}",
        values["image"]["repository"].as_str().unwrap_or_default(),
        chart["appVersion"].as_str().unwrap_or_default()
    );
    assert_eq!(reference, default);

    let crane = tool("crane")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _registry = Registry(
        Command::new(tool("registry")?)
            .args(["-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let tag = reference.rsplit(':').next().unwrap_or_default();
    let target = format!("127.0.0.1:{port}/labpods/labpods:{tag}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let pushed = loop {
        let output = Command::new(&crane)
            .args(["push", "--insecure"])
            .arg(dir.path().join("a"))
            .arg(&target)
            .output()?;
        if output.status.success() || Instant::now() > deadline {
            break ok(output, "crane push")?;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        pushed.trim(),
        format!("127.0.0.1:{port}/labpods/labpods@{digest}")
    );
    let remote = ok(
        Command::new(&crane)
            .args(["digest", "--insecure", &target])
            .output()?,
        "crane digest",
    )?;
    assert_eq!(remote.trim(), digest);

    let config: Value = serde_json::from_str(&ok(
        Command::new(&crane)
            .args(["config", "--insecure", &target])
            .output()?,
        "crane config",
    )?)?;
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/usr/bin/labpods"]));
    assert_eq!(
        c["Labels"]["org.opencontainers.image.source"],
        "https://github.com/labpods/labpods"
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    assert_eq!(c["Labels"]["org.opencontainers.image.version"], tag);
    assert_eq!(config["os"], "linux");

    // Pulled back and unpacked: the binary runs with the image's loader and libraries only.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    let tarball = dir.path().join("fs.tar");
    ok(
        Command::new(&crane)
            .args(["export", "--insecure", &target])
            .arg(&tarball)
            .output()?,
        "crane export",
    )?;
    ok(
        Command::new("tar")
            .arg("xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&rootfs)
            .output()?,
        "tar xf",
    )?;
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash"] {
        assert!(!rootfs.join(absent).exists(), "the image has {absent}");
    }
    assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file());
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd"))?;
    assert!(passwd.contains(":65532:65532:"), "{passwd}");
    let libraries = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"]
        .iter()
        .map(|d| rootfs.join(d).display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let version = ok(
        Command::new(rootfs.join("lib64/ld-linux-x86-64.so.2"))
            .args(["--inhibit-cache", "--library-path", &libraries])
            .arg(rootfs.join("usr/bin/labpods"))
            .arg("--version")
            .env_clear()
            .output()?,
        "labpods --version from the image",
    )?;
    assert_eq!(version.trim(), format!("labpods {tag}"));
    Ok(())
}
