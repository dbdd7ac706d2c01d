//! The command line, as `kubectl lab --help` shows it. kubectl runs the binary `kubectl-lab`
//! on the PATH for `kubectl lab ...`; the global flags are the ones kubectl users expect.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  kubectl lab hosts --profile x86-large            # every host, who holds it until when
  kubectl lab hosts --free-at +2d                  # what is free two days from now
  kubectl lab book ci-pod --role jumphost=1 --role node=3 --profile x86-large \\
      --image https://images.example/os.iso --for 3d --wait
  kubectl lab status ci-pod -n team-a              # per-host progress, conditions, events
  kubectl lab descriptor ci-pod > pdf.yaml          # the pod descriptor for installers
  kubectl lab extend ci-pod --by 1d
  kubectl lab calendar --days 7
  kubectl lab release ci-pod
  kubectl lab report --since 30d --format html > lab-usage.html
  kubectl lab forecast --horizon 180d --target-p95-wait 24h
  kubectl lab completion bash > /etc/bash_completion.d/kubectl-lab

Exit codes: 0 done, 1 error (not found, refused, API), 2 bad usage, 3 the booking failed,
4 timed out waiting.";

// Each subcommand's `--help` ends with examples a user can adapt (kubectl's own habit).
const HOSTS_EXAMPLES: &str = "\
Examples:
  kubectl lab hosts                                  # every host: state, power, who holds it until when
  kubectl lab hosts --lab lab-a --profile x86-large
  kubectl lab hosts --free-at +2d                    # what is free two days from now
  kubectl lab hosts --free-at 2026-12-07T09:00:00Z -o yaml";

const BOOK_EXAMPLES: &str = "\
Examples:
  # 1 jumphost and 3 nodes of x86-large for 3 days, your key on every host, followed to Ready
  kubectl lab book ci-pod --role jumphost=1 --role node=3 --profile x86-large \\
      --image https://images.example/debian-12.iso --ssh-key ~/.ssh/id_ed25519.pub --for 3d --wait

  # a small jumphost and 3 large nodes, each role its own profile
  kubectl lab book ci-pod --role jumphost=1:x86-small --role node=3:x86-large \\
      --image https://images.example/debian-12.iso --for 3d

  # 2 nodes of lab-a from Monday 09:00 UTC for 12 hours, the image's digest checked
  kubectl lab book perf-run -n team-a --role node=2 --lab lab-a \\
      --image https://images.example/os.iso --checksum sha256:<hex> \\
      --start 2026-12-07T09:00:00Z --for 12h --purpose \"nightly perf run\"";

const STATUS_EXAMPLES: &str = "\
Examples:
  kubectl lab status ci-pod                          # per-host progress, conditions, events
  kubectl lab status ci-pod -n team-a -o yaml        # the same for scripts";

const EXTEND_EXAMPLES: &str = "\
Examples:
  kubectl lab extend ci-pod --by 1d                  # one more day, if no booking needs the hosts
  kubectl lab extend ci-pod -n team-a --by 6h --timeout 2m";

const RELEASE_EXAMPLES: &str = "\
Examples:
  kubectl lab release ci-pod                         # the hosts power off and go back to the pool
  kubectl lab release ci-pod --wait --timeout 10m    # return once every host is back";

const SSH_EXAMPLES: &str = "\
Examples:
  kubectl lab ssh ci-pod                             # a shell on the booking's first host
  kubectl lab ssh ci-pod node-2                      # a shell on node-2
  kubectl lab ssh ci-pod node-1 -- uname -a          # run one command there";

const DESCRIPTOR_EXAMPLES: &str = "\
Examples:
  kubectl lab descriptor ci-pod > pdf.yaml           # the PDF for an installer
  kubectl lab descriptor ci-pod --idf > idf.yaml     # its networks";

const CALENDAR_EXAMPLES: &str = "\
Examples:
  kubectl lab calendar                               # the next 14 days of every host
  kubectl lab calendar --days 7 --profile x86-large
  kubectl lab calendar --lab lab-a -o json";

const REPORT_EXAMPLES: &str = "\
Examples:
  kubectl lab report                                 # the last 30 days as a table
  kubectl lab report --since 7d --format csv > usage.csv
  kubectl lab report --since 30d --format html > lab-usage.html   # charts, one file
  kubectl lab report -o yaml                         # the figures for scripts";

const FORECAST_EXAMPLES: &str = "\
Examples:
  kubectl lab forecast                               # 180 days ahead, p95 wait under 24h
  kubectl lab forecast --horizon 90d --target-p95-wait 12h --since 60d
  kubectl lab forecast -o json";

const COMPLETION_EXAMPLES: &str = "\
Examples:
  kubectl lab completion bash > /etc/bash_completion.d/kubectl-lab
  source <(kubectl lab completion zsh)
  kubectl lab completion fish > ~/.config/fish/completions/kubectl-lab.fish";

/// Book, watch, extend and release bare-metal pods of a labpods lab.
#[derive(Debug, Parser)]
#[command(name = "kubectl-lab", bin_name = "kubectl lab", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The namespace of your bookings (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Output format: a table for people (default), or json / yaml for scripts.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hosts of the lab: state, power, profile, who holds each until when, when each is free.
    #[command(after_help = HOSTS_EXAMPLES)]
    Hosts(HostsArgs),
    /// Book a pod: writes a PodRequest (and with --wait follows it to Ready).
    #[command(after_help = BOOK_EXAMPLES)]
    Book(BookArgs),
    /// A booking's phase, per-host progress, conditions, events and place in the queue.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(NameArgs),
    /// Ask for a later end of a booking; the operator accepts or says why not.
    #[command(after_help = EXTEND_EXAMPLES)]
    Extend(ExtendArgs),
    /// Give a booking's hosts back now (they are powered off and return to the pool).
    #[command(after_help = RELEASE_EXAMPLES)]
    Release(ReleaseArgs),
    /// Log into a booked host with ssh, its reported host key pinned (from the booking's
    /// access Secret): `kubectl lab ssh ci-pod node-1 -- uname -a`.
    #[command(after_help = SSH_EXAMPLES)]
    Ssh(SshArgs),
    /// Print a booking's pod descriptor for installers: the OPNFV/Anuket PDF, or with
    /// --idf the IDF (from the ConfigMap `<booking>-pod`).
    #[command(after_help = DESCRIPTOR_EXAMPLES)]
    Descriptor(DescriptorArgs),
    /// Who holds which host when, and what is reserved, as a timeline.
    #[command(after_help = CALENDAR_EXAMPLES)]
    Calendar(CalendarArgs),
    /// How the lab was used: utilization per lab and profile, bookings, waits, provisioning,
    /// extensions, top namespaces (from the operator's allocation history).
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Per profile: when demand will exceed capacity at the observed growth, and how many
    /// hosts would keep the p95 wait under a target (the scheduler's simulation).
    #[command(after_help = FORECAST_EXAMPLES)]
    Forecast(ForecastArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = COMPLETION_EXAMPLES)]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    /// Only hosts of this lab (label labpods.dev/lab).
    #[arg(long)]
    pub lab: Option<String>,
    /// Only hosts of this profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Only hosts free at this time (RFC 3339, `now`, or `+2d` from now).
    #[arg(long, value_name = "TIME")]
    pub free_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct BookArgs {
    /// Name of the booking (a PodRequest, and later its Lease, of this name).
    pub name: String,
    /// A role and how many hosts it needs, e.g. `--role jumphost=1 --role node=3`; with
    /// `:PROFILE` only hosts of that profile for this role, e.g. `--role node=3:x86-large`.
    #[arg(long = "role", value_name = "NAME=COUNT[:PROFILE]", required = true)]
    pub roles: Vec<String>,
    /// Only hosts of this profile (every role without a profile of its own).
    #[arg(long)]
    pub profile: Option<String>,
    /// Only hosts of this lab (label labpods.dev/lab, every role).
    #[arg(long)]
    pub lab: Option<String>,
    /// URL of the ISO image every host boots.
    #[arg(long)]
    pub image: String,
    /// Expected digest of the image, `sha256:<hex>` or `sha512:<hex>`.
    #[arg(long)]
    pub checksum: Option<String>,
    /// When the booking starts (RFC 3339 or `+1d` from now); default: as soon as hosts are free.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// How long the booking lasts: `3d`, `12h`, `1d12h`, `90m`.
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: String,
    /// What the pod is for (shown to lab operators in reports).
    #[arg(long)]
    pub purpose: Option<String>,
    /// A file of OpenSSH public keys (e.g. ~/.ssh/id_ed25519.pub) authorised on every host;
    /// repeatable.
    #[arg(long = "ssh-key", value_name = "FILE")]
    pub ssh_keys: Vec<std::path::PathBuf>,
    /// Follow the booking with a progress bar per host until it is Ready or fails.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (`30s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// Name of the booking.
    pub name: String,
    /// The host's hostname (`<role>-<n>`, see `kubectl lab status`); default the first.
    pub hostname: Option<String>,
    /// A command to run there instead of a shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DescriptorArgs {
    /// Name of the booking.
    pub name: String,
    /// Print the IDF (the networks) instead of the PDF.
    #[arg(long)]
    pub idf: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Name of the booking.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    /// Name of the booking.
    pub name: String,
    /// How much longer: `2d`, `12h`, `1d6h`.
    #[arg(long, value_name = "DURATION")]
    pub by: String,
    /// How long to wait for the operator's answer.
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Name of the booking.
    pub name: String,
    /// Wait until every host is back in the pool.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (`30s`, `10m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// How many days the timeline shows, from today.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub days: u32,
    /// Only hosts of this profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Only hosts of this lab.
    #[arg(long)]
    pub lab: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    Html,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The period, up to now: `30d`, `7d`, `12h`.
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    pub since: String,
    /// table for the terminal (default), csv or json for spreadsheets and scripts, html for
    /// a self-contained page with charts. Without it, `-o json|yaml` gives the figures as
    /// every command does.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Where the operator keeps the history (its leader-election namespace).
    #[arg(long, default_value = "labpods-system", value_name = "NAMESPACE")]
    pub history_namespace: String,
}

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// How far ahead to look.
    #[arg(long, default_value = "180d", value_name = "DURATION")]
    pub horizon: String,
    /// The p95 wait the lab aims for.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub target_p95_wait: String,
    /// The history the growth is fitted to.
    #[arg(long, default_value = "90d", value_name = "DURATION")]
    pub since: String,
    /// Where the operator keeps the history (its leader-election namespace).
    #[arg(long, default_value = "labpods-system", value_name = "NAMESPACE")]
    pub history_namespace: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn every_subcommand_help_shows_examples() {
        let mut cli = Cli::command();
        cli.build();
        let mut seen = 0;
        for sub in cli.get_subcommands_mut().filter(|s| s.get_name() != "help") {
            let help = sub.render_long_help().to_string();
            assert!(
                help.contains("Example"),
                "kubectl lab {} --help has no example:\n{help}",
                sub.get_name()
            );
            // A realistic example runs the subcommand itself.
            assert!(
                help.contains(&format!("kubectl lab {} ", sub.get_name())),
                "kubectl lab {} --help:\n{help}",
                sub.get_name()
            );
            seen += 1;
        }
        assert_eq!(seen, 11, "a new subcommand needs its examples too");
    }
}
