//! `cargo xtask fuzz [TARGET...] [--seconds N]`: runs the cargo-fuzz targets of fuzz/ (issue
//! 9: Redfish response parsing, PodRequest validation, seed images), each for N seconds
//! (default 600) on its corpus in fuzz/corpus/TARGET, with a progress line every minute.
//! Installs cargo-fuzz when missing; needs a nightly toolchain (libFuzzer's sanitizer
//! coverage). New inputs the fuzzer keeps land in the corpus (minimise with `cargo +nightly
//! fuzz cmin` before committing); a crash stops the run with its input in fuzz/artifacts/.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::workspace_root;

const TARGETS: [&str; 3] = ["redfish_response", "podrequest_validation", "cidata_image"];

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 600;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().context("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--seconds {value:?} is not a number"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown fuzz target or option {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let has_nightly = nightly(&["rustc", "--version"]).output();
    if !has_nightly.is_ok_and(|o| o.status.success()) {
        bail!("cargo fuzz needs a nightly toolchain: rustup toolchain install nightly");
    }
    if !nightly(&["cargo", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        println!("==> installing cargo-fuzz (a few minutes, once)");
        let status = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("running cargo install cargo-fuzz")?;
        if !status.success() {
            bail!("cargo install cargo-fuzz failed ({status})");
        }
    }
    let root = workspace_root();
    let mut summary = Vec::new();
    for target in targets {
        println!("==> fuzz {target} for {seconds} s (building it first)");
        let corpus = root.join("fuzz/corpus").join(target);
        let mut child = nightly(&["cargo", "fuzz", "run", "--fuzz-dir", "fuzz", "-O", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .current_dir(&root)
            .spawn()
            .context("running cargo fuzz")?;
        let started = Instant::now();
        let mut last = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if last.elapsed() >= Duration::from_secs(60) {
                println!(
                    "[fuzz] {target}: {} s of {seconds}",
                    started.elapsed().as_secs()
                );
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        let outcome = if status.success() {
            "no failure"
        } else {
            "FAILED (input in fuzz/artifacts)"
        };
        summary.push(format!(
            "{target}: {outcome} in {} s",
            started.elapsed().as_secs()
        ));
        if !status.success() {
            break;
        }
    }
    println!("==> fuzz summary");
    for line in &summary {
        println!("  {line}");
    }
    if summary.iter().any(|l| l.contains("FAILED")) {
        bail!("a fuzz target failed");
    }
    Ok(())
}

/// `program args` with the nightly toolchain (whatever toolchain runs this task).
fn nightly(args: &[&str]) -> Command {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly"])
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    command
}
