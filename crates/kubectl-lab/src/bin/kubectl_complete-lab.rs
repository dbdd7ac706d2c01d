//! `kubectl_complete-lab`: kubectl (1.26 and later) runs it, when it is on the PATH beside
//! `kubectl-lab`, to complete `kubectl lab <TAB>` in kubectl's own shell completion.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    match kubectl_lab::complete_for_kubectl(args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
