//! Runs a control plane with the labpods CRDs installed until Ctrl-C (or SIGTERM), or with
//! `--until-stdin-closes` until its stdin closes. Prints `KUBECONFIG=<path>` once it is
//! ready: `cargo xtask test` shares it with the tests, `cargo xtask testenv` with a person.

use std::time::{Duration, Instant};

use labpods_tests::{ControlPlane, ControlPlaneConfig, labpods_crds};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let watch_stdin = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--until-stdin-closes") => true,
        Some(other) => anyhow::bail!(
            "unknown argument {other:?}; usage: labpods-testenv [--until-stdin-closes]"
        ),
    };
    let started = Instant::now();
    let mut plane = ControlPlane::start(ControlPlaneConfig::default().crds(labpods_crds())).await?;
    eprintln!(
        "control plane ready in {:.1} s: {} (logs in {})",
        started.elapsed().as_secs_f64(),
        plane.server(),
        plane.dir().display()
    );
    eprintln!(
        "use it with: export KUBECONFIG={}; kubectl get lab -A",
        plane.kubeconfig().display()
    );
    println!("KUBECONFIG={}", plane.kubeconfig().display());

    let mut health = tokio::time::interval(Duration::from_secs(1));
    let stdin_closed = async move {
        if watch_stdin {
            let _ = stdin_eof().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stdin_closed);
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            () = &mut stdin_closed => break,
            _ = terminate.recv() => break,
            _ = health.tick() => plane.check_running()?,
        }
    }
    eprintln!("stopping the control plane");
    Ok(())
}

/// Resolves when stdin reaches end of file: the owner (`cargo xtask test`) let go or died.
fn stdin_eof() -> oneshot::Receiver<()> {
    let (closed, receiver) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    receiver
}
