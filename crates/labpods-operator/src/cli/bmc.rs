//! `labpods bmc`: drive one BMC by hand with the operator's Redfish client, e.g. to check a
//! new host before registering it. Credentials come from flags, the environment or a file and
//! are never printed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use labpods_redfish::{
    Bmc, BmcTarget, BootEnabled, BootMode, BootOverride, BootTarget, ClientPolicy, Credentials,
    Fingerprint, Inventory, MediaState, PowerState, RedfishConnector, ResetKind, SettingNames,
    TlsOptions, Url,
};
use serde::Serialize;

#[derive(Debug, Args)]
pub struct BmcArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: BmcCommand,
}

#[derive(Debug, Args)]
struct Connection {
    /// Redfish endpoint of the BMC, e.g. https://10.0.0.5
    #[arg(long, env = "LABPODS_BMC_ENDPOINT")]
    endpoint: Url,
    /// ComputerSystem Id or UUID (needed when the BMC manages several systems).
    #[arg(long)]
    system_id: Option<String>,
    #[arg(long, env = "LABPODS_BMC_USERNAME")]
    username: Option<String>,
    /// Prefer the environment variable or --credentials-file: flags show in `ps`.
    #[arg(long, env = "LABPODS_BMC_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// File with `username=...` and `password=...` lines (as a Secret's keys).
    #[arg(long, conflicts_with_all = ["username", "password"])]
    credentials_file: Option<PathBuf>,
    /// PEM bundle of the CA that signed the BMC's certificate, or the BMC's own self-signed
    /// certificate (default: system roots).
    #[arg(long, conflicts_with_all = ["insecure", "fingerprint"])]
    ca_file: Option<PathBuf>,
    /// Accept exactly the certificate with this SHA-256 fingerprint (64 hex digits, colons
    /// allowed, as `openssl x509 -noout -fingerprint -sha256` prints).
    #[arg(long, value_name = "SHA256", conflicts_with = "insecure")]
    fingerprint: Option<Fingerprint>,
    /// Do not verify the BMC's certificate.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, Subcommand)]
enum BmcCommand {
    /// Show inventory, power, boot progress, boot override and virtual media.
    Info {
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Power the system on, off (forced) or cycle it, and wait for the BMC to report it.
    Power {
        #[arg(value_enum)]
        action: PowerAction,
        /// How long to wait for the power state to settle.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Boot once from the given device at the next boot (UEFI unless --legacy).
    BootOnce {
        #[arg(value_enum)]
        target: BootDevice,
        #[arg(long)]
        legacy: bool,
    },
    /// Insert or eject the virtual CD/DVD.
    #[command(subcommand)]
    Media(MediaCommand),
}

#[derive(Debug, Subcommand)]
enum MediaCommand {
    /// Insert the image at URL (the BMC downloads it).
    Insert { url: Url },
    /// Eject whatever is inserted (succeeds when empty).
    Eject,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PowerAction {
    On,
    Off,
    Cycle,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BootDevice {
    Cd,
    Pxe,
    Hdd,
}

/// Runs one `labpods bmc` command, writing human (or JSON) output to `out`.
pub async fn run(args: BmcArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let target = args.connection.target()?;
    let connector = RedfishConnector::new(ClientPolicy::default());
    let bmc = connector
        .client(&target)
        .await
        .context("connecting to the BMC")?;
    let result = execute(args.command, &*bmc, out).await;
    // Always free the BMC's session slot, also after a failed command.
    if connector.logout_all().await > 0 {
        eprintln!("warning: logging out of the BMC failed");
    }
    result
}

async fn execute(command: BmcCommand, bmc: &dyn Bmc, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        BmcCommand::Info { output } => {
            let info = Info::read(bmc).await?;
            match output {
                Output::Text => info.write_text(out)?,
                Output::Json => writeln!(out, "{}", serde_json::to_string_pretty(&info)?)?,
            }
        }
        BmcCommand::Power { action, timeout } => {
            let (kind, settled) = match action {
                PowerAction::On => (ResetKind::On, Some(PowerState::On)),
                PowerAction::Off => (ResetKind::ForceOff, Some(PowerState::Off)),
                // A restart ends where it started (On); only the BMC's answer is checked.
                PowerAction::Cycle => (ResetKind::ForceRestart, None),
            };
            bmc.reset(kind).await?;
            match settled {
                Some(want) => {
                    wait_for_power(bmc, &want, timeout).await?;
                    writeln!(out, "power: {want}")?;
                }
                None => writeln!(out, "power: cycle requested")?,
            }
        }
        BmcCommand::BootOnce { target, legacy } => {
            let target = match target {
                BootDevice::Cd => BootTarget::Cd,
                BootDevice::Pxe => BootTarget::Pxe,
                BootDevice::Hdd => BootTarget::Hdd,
            };
            let mode = if legacy {
                BootMode::Legacy
            } else {
                BootMode::Uefi
            };
            bmc.set_boot_override(target, BootEnabled::Once, mode)
                .await?;
            writeln!(
                out,
                "boot override: {}",
                describe_override(&bmc.boot_override().await?)
            )?;
        }
        BmcCommand::Media(MediaCommand::Insert { url }) => {
            bmc.insert_media(&url).await?;
            writeln!(
                out,
                "virtual media: {}",
                describe_media(Some(&bmc.media_state().await?))
            )?;
        }
        BmcCommand::Media(MediaCommand::Eject) => {
            bmc.eject_media().await?;
            writeln!(
                out,
                "virtual media: {}",
                describe_media(Some(&bmc.media_state().await?))
            )?;
        }
    }
    Ok(())
}

async fn wait_for_power(bmc: &dyn Bmc, want: &PowerState, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = bmc.power_state().await?;
        if &now == want {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the BMC still reports power {now} after {timeout:?} (wanted {want})");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Connection {
    fn target(&self) -> anyhow::Result<BmcTarget> {
        let credentials = match &self.credentials_file {
            Some(path) => read_credentials_file(path)?,
            None => match (&self.username, &self.password) {
                (Some(user), Some(password)) => Credentials::new(user, password),
                _ => bail!(
                    "BMC credentials missing: give --credentials-file, or --username and \
                     LABPODS_BMC_PASSWORD (or --password)"
                ),
            },
        };
        let ca_pem = match &self.ca_file {
            Some(path) => {
                Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
            }
            None => None,
        };
        Ok(BmcTarget {
            endpoint: self.endpoint.clone(),
            system_id: self.system_id.clone(),
            credentials,
            tls: TlsOptions {
                ca_pem,
                certificate_sha256: self.fingerprint,
                insecure_skip_verify: self.insecure,
                names: SettingNames {
                    ca_bundle: "--ca-file",
                    fingerprint: "--fingerprint",
                },
            },
        })
    }
}

/// Reads `username=...` / `password=...` lines; blank lines and `#` comments are ignored.
fn read_credentials_file(path: &Path) -> anyhow::Result<Credentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    let (mut username, mut password) = (None, None);
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("username", value)) => username = Some(value.to_owned()),
            Some(("password", value)) => password = Some(value.to_owned()),
            // The line may hold a secret: name only its number.
            _ => bail!(
                "{}: line {} is not `username=...` or `password=...`",
                path.display(),
                number + 1
            ),
        }
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok(Credentials::new(u, p)),
        _ => bail!(
            "{}: needs both username= and password= lines",
            path.display()
        ),
    }
}

/// Everything `labpods bmc info` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    inventory: Inventory,
    power_state: PowerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    boot_progress: Option<String>,
    boot_override: BootOverride,
    /// None when the BMC offers no virtual CD/DVD.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_media: Option<MediaState>,
}

impl Info {
    async fn read(bmc: &dyn Bmc) -> anyhow::Result<Self> {
        Ok(Self {
            inventory: bmc.inventory().await?,
            power_state: bmc.power_state().await?,
            boot_progress: bmc.boot_progress().await?,
            boot_override: bmc.boot_override().await?,
            virtual_media: match bmc.media_state().await {
                Ok(state) => Some(state),
                Err(labpods_redfish::Error::Unsupported(_)) => None,
                Err(e) => return Err(e.into()),
            },
        })
    }

    fn write_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let inv = &self.inventory;
        let unknown = || "-".to_owned();
        let field = |v: &Option<String>| v.clone().unwrap_or_else(unknown);
        writeln!(out, "System:        {}", inv.system_id)?;
        writeln!(out, "UUID:          {}", field(&inv.uuid))?;
        writeln!(out, "Manufacturer:  {}", field(&inv.manufacturer))?;
        writeln!(out, "Model:         {}", field(&inv.model))?;
        writeln!(out, "Serial:        {}", field(&inv.serial_number))?;
        let cpus = match (inv.cpu_count, &inv.cpu_model) {
            (Some(n), Some(model)) => format!("{n} x {model}"),
            (Some(n), None) => n.to_string(),
            (None, model) => field(model),
        };
        writeln!(out, "CPUs:          {cpus}")?;
        let memory = inv.memory_gib.map_or_else(unknown, |g| format!("{g} GiB"));
        writeln!(out, "Memory:        {memory}")?;
        let nics = if inv.nic_macs.is_empty() {
            unknown()
        } else {
            inv.nic_macs.join(", ")
        };
        writeln!(out, "NIC MACs:      {nics}")?;
        writeln!(out, "Disks:         {}", inv.disks.len())?;
        for disk in &inv.disks {
            let size = disk
                .capacity_bytes
                .map_or_else(unknown, |b| format!("{:.0} GB", b as f64 / 1e9));
            let name = disk
                .name
                .clone()
                .or_else(|| disk.model.clone())
                .unwrap_or_else(unknown);
            writeln!(out, "  {name}  {size}")?;
        }
        writeln!(out, "Power:         {}", self.power_state)?;
        let progress = self
            .boot_progress
            .clone()
            .unwrap_or_else(|| "not reported".to_owned());
        writeln!(out, "Boot progress: {progress}")?;
        writeln!(
            out,
            "Boot override: {}",
            describe_override(&self.boot_override)
        )?;
        writeln!(
            out,
            "Virtual media: {}",
            describe_media(self.virtual_media.as_ref())
        )
    }
}

fn describe_override(boot: &BootOverride) -> String {
    match &boot.target {
        None => "none".to_owned(),
        Some(target) => {
            let details: Vec<&str> = [&boot.enabled, &boot.mode]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            format!("{target} ({})", details.join(", "))
        }
    }
}

fn describe_media(media: Option<&MediaState>) -> String {
    match media {
        None => "not offered by this BMC".to_owned(),
        Some(MediaState {
            inserted: false, ..
        }) => "empty".to_owned(),
        Some(MediaState {
            inserted: true,
            image,
        }) => {
            format!(
                "inserted {}",
                image.as_deref().unwrap_or("(image not reported)")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_errors_do_not_echo_lines() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("labpods-bmc-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("creds");
        std::fs::write(&path, "username=root\nhunter2-secret\n")?;
        let err = read_credentials_file(&path).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");

        std::fs::write(&path, "# lab BMC\nusername=root\npassword = p=w\n")?;
        assert_eq!(
            read_credentials_file(&path)?,
            Credentials::new("root", "p=w")
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
