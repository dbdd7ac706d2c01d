//! `book`, `extend` and `release`: the writes a user makes, each followed (when asked) until
//! the operator has answered.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use labpods_api::conditions::{EXTENSION_REJECTED, find_condition};
use labpods_api::v1alpha1::{
    AccessSpec, AssignedHost, HostProgress, HostState, ImageSpec, LABEL_LAB, Lease, MAX_SSH_KEYS,
    PodRequest, PodRequestPhase, PodRequestSpec, PodRequestStatus, ProvisioningStep, RoleSpec,
};
use labpods_api::validation::{
    access_errors, format_duration, parse_duration, podrequest_rule_errors,
};

use crate::cli::{BookArgs, ExtendArgs, ReleaseArgs};
use crate::error::{Error, Result};
use crate::output::{self, Colour, Table, paint};
use crate::session::Session;

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(500);

/// The provisioning steps in order, for a host's progress bar.
const STEPS: [ProvisioningStep; 9] = [
    ProvisioningStep::PowerOff,
    ProvisioningStep::WaitPoweredOff,
    ProvisioningStep::EjectMedia,
    ProvisioningStep::InsertMedia,
    ProvisioningStep::SetBootOnce,
    ProvisioningStep::PowerOn,
    ProvisioningStep::WaitBooted,
    ProvisioningStep::EjectAfterBoot,
    ProvisioningStep::Done,
];
const BAR: usize = 18;

/// `jumphost=1` -> (`jumphost`, 1, None); `node=3:x86-large` -> (`node`, 3, `x86-large`).
pub fn parse_role(text: &str) -> Result<(String, u32, Option<String>)> {
    let usage = || {
        Error::Usage(format!(
            "--role {text:?}: expected NAME=COUNT[:PROFILE] with lower-case names and 1 to 64 hosts, e.g. --role node=3 or --role node=3:x86-large"
        ))
    };
    // Role and profile names are DNS labels, as the CRD's schema has them.
    let label_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    };
    let (name, rest) = text.split_once('=').ok_or_else(usage)?;
    let (count, profile) = match rest.split_once(':') {
        Some((count, profile)) => (count, Some(profile)),
        None => (rest, None),
    };
    let count: u32 = count.trim().parse().map_err(|_| usage())?;
    if !label_ok(name)
        || !profile.is_none_or(label_ok)
        || !(1..=labpods_api::v1alpha1::MAX_ROLE_COUNT).contains(&count)
    {
        return Err(usage());
    }
    Ok((name.to_string(), count, profile.map(str::to_owned)))
}

/// The public keys of the `--ssh-key` files, each line with the file it came from (blank
/// lines and `#` comments skipped, as in an authorized_keys file).
pub fn read_ssh_keys(args: &BookArgs) -> Result<Vec<(String, String)>> {
    let mut keys = Vec::new();
    for path in &args.ssh_keys {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!("--ssh-key {}: cannot read it: {e}", path.display()))
        })?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| (path.display().to_string(), l.to_owned())),
        );
    }
    Ok(keys)
}

/// The keys as `spec.access`, checked as the apiserver and the operator check them, each
/// error naming the file it came from.
fn access(keys: &[(String, String)]) -> Result<Option<AccessSpec>> {
    if keys.is_empty() {
        return Ok(None);
    }
    if keys.len() > MAX_SSH_KEYS {
        return Err(Error::Usage(format!(
            "--ssh-key: {} keys given, at most {MAX_SSH_KEYS} are allowed",
            keys.len()
        )));
    }
    let access = AccessSpec {
        ssh_authorized_keys: keys.iter().map(|(_, k)| k.clone()).collect(),
        ..AccessSpec::default()
    };
    let spec = PodRequestSpec {
        access: Some(access.clone()),
        ..PodRequestSpec::default()
    };
    let mut errors = podrequest_rule_errors(&spec)
        .into_iter()
        .chain(access_errors(&spec))
        .filter(|e| e.field.starts_with("spec.access"));
    if let Some(error) = errors.next() {
        let index = error
            .field
            .strip_prefix("spec.access.sshAuthorizedKeys[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok());
        let file = index
            .and_then(|i| keys.get(i))
            .map_or("", |(f, _)| f.as_str());
        return Err(Error::Usage(format!("--ssh-key {file}: {}", error.message)));
    }
    Ok(Some(access))
}

/// The PodRequest `kubectl lab book` writes (pure); `keys` from [`read_ssh_keys`].
pub fn request(args: &BookArgs, keys: &[(String, String)], now: Timestamp) -> Result<PodRequest> {
    let mut roles = Vec::new();
    for text in &args.roles {
        let (name, count, profile) = parse_role(text)?;
        if roles.iter().any(|r: &RoleSpec| r.name == name) {
            return Err(Error::Usage(format!("--role {name} is given twice")));
        }
        let mut role = RoleSpec::new(name, count);
        if let Some(profile) = profile.as_ref().or(args.profile.as_ref()) {
            role = role.with_profile(profile);
        }
        if let Some(lab) = &args.lab {
            role = role.with_match_labels([(LABEL_LAB, lab.as_str())]);
        }
        roles.push(role);
    }
    output::parse_length("--for", &args.duration)?;
    let start = args
        .start
        .as_deref()
        .map(|t| output::parse_instant("--start", t, now))
        .transpose()?;
    let mut image = ImageSpec::new(&args.image);
    image.checksum = args.checksum.clone();
    let spec = PodRequestSpec {
        roles,
        image,
        start: start.map(Time),
        duration: Some(args.duration.clone()),
        end: None,
        purpose: args.purpose.clone(),
        access: access(keys)?,
    };
    Ok(PodRequest::new(&args.name, spec))
}

pub async fn book(session: &Session, args: &BookArgs, out: &mut dyn Write) -> Result<()> {
    let pr = request(args, &read_ssh_keys(args)?, session.now)?;
    let timeout = output::parse_timeout("--timeout", &args.timeout)?;
    let created = match session
        .podrequests()
        .create(&PostParams::default(), &pr)
        .await
    {
        Ok(created) => created,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            return Err(Error::Refused(format!(
                "a PodRequest named {} already exists in namespace {} (see kubectl lab status {})",
                args.name, session.namespace, args.name
            )));
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            session.ensure_installed("podrequests.labpods.dev").await?;
            return Err(Error::Api(s.message));
        }
        Err(e) => return Err(session.err(&format!("creating PodRequest {}", args.name), e)),
    };
    let roles: Vec<String> = created
        .spec
        .roles
        .iter()
        .map(|r| format!("{} {}", r.count, r.name))
        .collect();
    let when = created.spec.start.as_ref().map_or_else(
        || "as soon as hosts are free".to_string(),
        |t| format!("from {}", output::time(t.0)),
    );
    writeln!(
        out,
        "podrequest {}/{} created: {} for {}, {when}",
        session.namespace,
        args.name,
        roles.join(" + "),
        args.duration
    )?;
    if args.wait {
        follow(session, &args.name, timeout, out).await?;
    }
    Ok(())
}

/// What one host's progress line says.
fn host_line(p: &HostProgress, role: &str, width: usize, colour: bool) -> String {
    let done = match (p.state, p.step) {
        (Some(HostState::Provisioned), _) => STEPS.len(),
        (_, Some(step)) => STEPS.iter().position(|s| *s == step).map_or(0, |i| i + 1),
        _ => 0,
    };
    let filled = BAR * done / STEPS.len();
    let bar = format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled));
    let what = match (p.state, p.step) {
        (Some(HostState::Provisioned), _) => "Ready".to_string(),
        (Some(HostState::Error), _) => "Error".to_string(),
        (_, Some(step)) => format!("{step:?}"),
        (Some(state), None) => format!("{state:?}"),
        (None, None) => "waiting".to_string(),
    };
    let c = match p.state {
        Some(HostState::Provisioned) => Some(Colour::Green),
        Some(HostState::Error) => Some(Colour::Red),
        _ => Some(Colour::Yellow),
    };
    let mut line = format!(
        "  {:<width$} {:<10} {bar} {}/{} {}",
        p.host,
        role,
        done,
        STEPS.len(),
        paint(&what, c, colour)
    );
    if let Some(m) = p.message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(&format!(" ({m})"));
    }
    line
}

/// Follows `name` until Ready (then prints how to reach the hosts), Failed (exit 3) or the
/// timeout (exit 4). On a terminal the per-host bars redraw in place; otherwise each change
/// is one new line, so a log of the wait reads top to bottom.
async fn follow(
    session: &Session,
    name: &str,
    timeout: SignedDuration,
    out: &mut dyn Write,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout.unsigned_abs();
    let mut said = String::new();
    let mut shown_lines = 0usize;
    loop {
        let pr = match session.podrequests().get_opt(name).await {
            Ok(Some(pr)) => pr,
            Ok(None) => {
                return Err(Error::Failed(format!(
                    "PodRequest {name} was deleted while waiting for it"
                )));
            }
            Err(e) => return Err(session.err(&format!("reading PodRequest {name}"), e)),
        };
        let lease = session.lease(name).await?;
        let status = pr.status.clone().unwrap_or_default();
        let phase = status.phase;
        let mut lines = vec![format!(
            "{name}: {}{}",
            phase.map_or_else(|| "Pending".to_string(), |p| format!("{p:?}")),
            status
                .message
                .as_deref()
                .map(|m| format!(" - {m}"))
                .unwrap_or_default()
        )];
        lines.extend(progress_lines(lease.as_ref(), session.colour));
        let text = lines.join("\n");
        if text != said {
            if session.colour && shown_lines > 0 {
                // Redraw in place: up and clear to the end of the screen.
                write!(out, "\x1b[{shown_lines}A\x1b[J")?;
            }
            if session.colour {
                writeln!(out, "{text}")?;
                shown_lines = lines.len();
            } else {
                // Only what changed since the last look.
                let before: Vec<&str> = said.lines().collect();
                for line in &lines {
                    if !before.contains(&line.as_str()) {
                        writeln!(out, "{line}")?;
                    }
                }
            }
            out.flush()?;
            said = text;
        }
        match phase {
            Some(PodRequestPhase::Ready) => return ready(session, &pr, out),
            Some(PodRequestPhase::Failed) => {
                return Err(Error::Failed(format!(
                    "{name} failed: {}",
                    status
                        .message
                        .unwrap_or_else(|| "see kubectl lab status".into())
                )));
            }
            _ => {}
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "{name} is not Ready after {}; it goes on (kubectl lab status {name})",
                output::length(timeout)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

fn progress_lines(lease: Option<&Lease>, colour: bool) -> Vec<String> {
    let Some(lease) = lease else {
        return Vec::new();
    };
    let roles: BTreeMap<&str, &str> = lease
        .spec
        .hosts
        .iter()
        .map(|h| (h.host.as_str(), h.role.as_str()))
        .collect();
    let progress = lease.status.as_ref().map(|s| &s.hosts);
    let width = lease
        .spec
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(0);
    lease
        .spec
        .hosts
        .iter()
        .map(|h| {
            let p = progress
                .and_then(|ps| ps.iter().find(|p| p.host == h.host))
                .cloned()
                .unwrap_or_else(|| HostProgress {
                    host: h.host.clone(),
                    ..HostProgress::default()
                });
            host_line(
                &p,
                roles.get(h.host.as_str()).copied().unwrap_or(""),
                width,
                colour,
            )
        })
        .collect()
}

/// What a user needs once the pod is up.
fn ready(session: &Session, pr: &PodRequest, out: &mut dyn Write) -> Result<()> {
    let status = pr.status.clone().unwrap_or_default();
    let until = status
        .scheduled_end
        .as_ref()
        .map(|t| format!(" until {}", output::time(t.0)))
        .unwrap_or_default();
    writeln!(
        out,
        "{} is Ready: {} hosts{until}",
        pr.name_any(),
        status.hosts.len()
    )?;
    reach(&pr.name_any(), &session.namespace, &status, out)?;
    writeln!(
        out,
        "Each host runs {} with your cloud-init.\n\
         More: kubectl lab status {name} -n {ns}; more time: kubectl lab extend {name} --by 1d; done: kubectl lab release {name} -n {ns}",
        pr.spec.image.url,
        name = pr.name_any(),
        ns = session.namespace,
    )?;
    Ok(())
}

/// The `kubectl lab ssh` line for a host it can log into: the operator wrote the access
/// Secret and this host reported an address and a host key to pin (what the Secret's
/// ssh_config lists).
fn ssh_hint(
    name: &str,
    namespace: &str,
    status: &PodRequestStatus,
    h: &AssignedHost,
) -> Option<String> {
    let hostname = h.hostname.as_deref()?;
    let reported = !h.addresses.is_empty() && !h.host_keys.is_empty();
    (status.access_secret.is_some() && reported)
        .then(|| format!("kubectl lab ssh {name} {hostname} -n {namespace}"))
}

/// Each host's role, hostname and reported address, then how to log into it (pure). Hosts
/// report when their image has booted (cloud-init phones home), which can be after Ready:
/// until then the lines say so instead of offering an ssh that would fail.
fn reach(
    name: &str,
    namespace: &str,
    status: &PodRequestStatus,
    out: &mut dyn Write,
) -> Result<()> {
    let mut t = Table::new(["role", "hostname", "address", "host", "log in"]);
    let mut waiting = 0;
    for h in &status.hosts {
        let hint = ssh_hint(name, namespace, status, h);
        waiting += usize::from(hint.is_none());
        let address = if h.addresses.is_empty() {
            "-".to_string()
        } else {
            h.addresses.join(",")
        };
        t.row(vec![
            h.role.as_str().into(),
            h.hostname.as_deref().unwrap_or("-").into(),
            address.into(),
            h.host.as_str().into(),
            hint.unwrap_or_else(|| "not reported yet".into()).into(),
        ]);
    }
    t.print(out, false)?;
    if waiting == status.hosts.len() {
        writeln!(
            out,
            "The hosts have not reported their addresses and host keys yet (each does once its image has booted); \
             kubectl lab status {name} -n {namespace} shows them, then kubectl lab ssh {name} <hostname> logs in."
        )?;
    } else if waiting > 0 {
        writeln!(
            out,
            "{waiting} host{} not reported yet: kubectl lab status {name} -n {namespace} shows when {}.",
            if waiting == 1 { " has" } else { "s have" },
            if waiting == 1 { "it does" } else { "they do" }
        )?;
    }
    Ok(())
}

pub async fn extend(session: &Session, args: &ExtendArgs, out: &mut dyn Write) -> Result<()> {
    let by = output::parse_length("--by", &args.by)?;
    let timeout = output::parse_timeout("--timeout", &args.timeout)?;
    let pr = session.podrequest(&args.name).await?;
    let lease = session.lease(&args.name).await?;
    let Some(lease) = lease else {
        // Not bound yet: a longer booking is just a longer request.
        let patch = match (
            &pr.spec.end,
            pr.spec.duration.as_deref().and_then(parse_duration),
        ) {
            (Some(end), _) => serde_json::json!({ "spec": { "end": Time(end.0 + by) } }),
            (None, Some(d)) => {
                serde_json::json!({ "spec": { "duration": format_duration(d + by) } })
            }
            (None, None) => {
                return Err(Error::Refused(format!(
                    "PodRequest {} has neither a duration nor an end to extend",
                    args.name
                )));
            }
        };
        patch_request(session, &args.name, &patch).await?;
        writeln!(
            out,
            "{} has no hosts yet: its request is now {} longer",
            args.name,
            output::length(by)
        )?;
        return Ok(());
    };
    let was = lease.spec.end.0;
    let new_end = was + by;
    let patch = serde_json::json!({ "spec": { "end": Time(new_end), "duration": null } });
    let patched = patch_request(session, &args.name, &patch).await?;
    let generation = patched.metadata.generation.unwrap_or_default();
    let deadline = std::time::Instant::now() + timeout.unsigned_abs();
    loop {
        if let Some(l) = session.lease(&args.name).await?
            && l.spec.end.0 == new_end
        {
            writeln!(
                out,
                "{} extended: ends {} ({}; was {})",
                args.name,
                output::time(new_end),
                output::relative(new_end, session.now),
                output::time(was)
            )?;
            return Ok(());
        }
        let pr = session.podrequest(&args.name).await?;
        let rejected = pr.status.as_ref().and_then(|s| {
            find_condition(&s.conditions, EXTENSION_REJECTED)
                .filter(|c| c.status == "True" && c.observed_generation.unwrap_or(0) >= generation)
        });
        if let Some(c) = rejected {
            return Err(Error::Refused(format!(
                "the lab refused to extend {}: {} (it still ends {})",
                args.name,
                c.message,
                output::time(was)
            )));
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "the operator has not answered the extension of {} in {} (kubectl lab status {})",
                args.name,
                output::length(timeout),
                args.name
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn patch_request(
    session: &Session,
    name: &str,
    patch: &serde_json::Value,
) -> Result<PodRequest> {
    session
        .podrequests()
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|e| session.err(&format!("changing PodRequest {name}"), e))
}

pub async fn release(session: &Session, args: &ReleaseArgs, out: &mut dyn Write) -> Result<()> {
    let timeout = output::parse_timeout("--timeout", &args.timeout)?;
    let pr = session.podrequest(&args.name).await?;
    let hosts = pr.status.as_ref().map_or(0, |s| s.hosts.len());
    match session
        .podrequests()
        .delete(&args.name, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Error::NotFound {
                kind: "PodRequest",
                name: args.name.clone(),
                namespace: session.namespace.clone(),
            });
        }
        Err(e) => return Err(session.err(&format!("deleting PodRequest {}", args.name), e)),
    }
    if hosts == 0 {
        writeln!(out, "{} released (it held no hosts)", args.name)?;
    } else {
        writeln!(
            out,
            "{} released: its {hosts} host{} are powered off and return to the pool",
            args.name,
            if hosts == 1 { "" } else { "s" }
        )?;
    }
    if !args.wait {
        return Ok(());
    }
    let deadline = std::time::Instant::now() + timeout.unsigned_abs();
    loop {
        match session.podrequests().get_opt(&args.name).await {
            Ok(None) => {
                writeln!(out, "every host of {} is back in the pool", args.name)?;
                return Ok(());
            }
            Ok(Some(_)) => {}
            Err(e) => return Err(session.err(&format!("reading PodRequest {}", args.name), e)),
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "{} is still releasing after {}",
                args.name,
                output::length(timeout)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn book_args(line: &[&str]) -> BookArgs {
        let cli = Cli::try_parse_from(line).unwrap();
        match cli.command {
            Command::Book(args) => args,
            other => panic!("not a book command: {other:?}"),
        }
    }

    #[test]
    fn book_writes_the_roles_profile_lab_and_window_asked_for() {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let args = book_args(&[
            "kubectl-lab",
            "book",
            "ci-pod",
            "--role",
            "jumphost=1:x86-small",
            "--role",
            "node=3",
            "--profile",
            "x86-large",
            "--lab",
            "lab-a",
            "--image",
            "https://i.test/os.iso",
            "--checksum",
            "sha256:abc",
            "--start",
            "+1d",
            "--for",
            "3d",
        ]);
        let pr = request(&args, &[], now).unwrap();
        assert_eq!(pr.name_any(), "ci-pod");
        assert_eq!(pr.spec.host_count(), 4);
        assert_eq!(pr.spec.roles[1].name, "node");
        assert_eq!(pr.spec.roles[1].profile.as_deref(), Some("x86-large"));
        assert_eq!(
            pr.spec.roles[0].profile.as_deref(),
            Some("x86-small"),
            "a role's own profile before --profile"
        );
        let labels = pr.spec.roles[0]
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(labels.get(LABEL_LAB).map(String::as_str), Some("lab-a"));
        assert_eq!(pr.spec.duration.as_deref(), Some("3d"));
        assert_eq!(
            pr.spec.start.unwrap().0,
            "2026-12-03T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(pr.spec.image.checksum.as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn bad_roles_and_lengths_are_usage_errors_that_say_what_is_expected() {
        for bad in [
            "node",
            "node=0",
            "node=65",
            "Node=1",
            "node=x",
            "node=1:",
            "node=1:X86",
        ] {
            let e = parse_role(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains("expected NAME=COUNT"), "{e}");
        }
        let now = Timestamp::now();
        let args = book_args(&[
            "kubectl-lab",
            "book",
            "p",
            "--role",
            "node=1",
            "--role",
            "node=2",
            "--image",
            "http://i",
            "--for",
            "1d",
        ]);
        assert!(
            request(&args, &[], now)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let args = book_args(&[
            "kubectl-lab",
            "book",
            "p",
            "--role",
            "node=1",
            "--image",
            "http://i",
            "--for",
            "3 days",
        ]);
        assert_eq!(request(&args, &[], now).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn ssh_keys_from_files_become_the_access_and_a_bad_one_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("id_ed25519.pub");
        let bad = dir.path().join("id_rsa.pub");
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV alice@laptop";
        std::fs::write(&good, format!("# mine\n{key}\n\n")).unwrap();
        std::fs::write(&bad, key.replacen("ssh-ed25519", "ssh-rsa", 1)).unwrap();
        let now = Timestamp::UNIX_EPOCH;
        let mut args = book_args(&[
            "kubectl-lab",
            "book",
            "ci",
            "--role",
            "node=1",
            "--image",
            "http://i/x.iso",
            "--for",
            "1h",
        ]);
        args.ssh_keys = vec![good.clone()];
        let keys = read_ssh_keys(&args).unwrap();
        let pr = request(&args, &keys, now).unwrap();
        assert_eq!(pr.spec.access.unwrap().ssh_authorized_keys, [key]);
        args.ssh_keys.push(bad.clone());
        let keys = read_ssh_keys(&args).unwrap();
        let err = request(&args, &keys, now).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--ssh-key {}: ", bad.display())),
            "{err}"
        );
        assert!(err.contains("not a ssh-rsa key"), "{err}");
        args.ssh_keys = vec![dir.path().join("missing.pub")];
        let err = read_ssh_keys(&args).unwrap_err();
        assert!(
            matches!(err, Error::Usage(_)) && err.to_string().contains("missing.pub"),
            "{err}"
        );
    }

    fn assigned(role: &str, n: u32, host: &str, address: Option<&str>) -> AssignedHost {
        AssignedHost {
            role: role.into(),
            host: host.into(),
            hostname: Some(format!("{role}-{n}")),
            addresses: address.into_iter().map(String::from).collect(),
            host_keys: address
                .map(|_| "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO+rffjb9hBUQZSpeLieKhjRVKNNpSnxzW83m7lvfpjV".into())
                .into_iter()
                .collect(),
            ..AssignedHost::default()
        }
    }

    fn reach_text(status: &PodRequestStatus) -> String {
        let mut out = Vec::new();
        reach("ci", "team-a", status, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ready_hosts_show_role_hostname_address_and_the_ssh_line_once_reported() {
        let mut status = PodRequestStatus {
            hosts: vec![
                assigned("jumphost", 1, "lab-h3", Some("10.0.0.3")),
                assigned("node", 1, "lab-h1", Some("10.0.0.1")),
                assigned("node", 2, "lab-h2", None),
            ],
            access_secret: Some("ci-access".into()),
            ..PodRequestStatus::default()
        };
        assert_eq!(
            reach_text(&status),
            "\
ROLE       HOSTNAME     ADDRESS    HOST     LOG IN
jumphost   jumphost-1   10.0.0.3   lab-h3   kubectl lab ssh ci jumphost-1 -n team-a
node       node-1       10.0.0.1   lab-h1   kubectl lab ssh ci node-1 -n team-a
node       node-2       -          lab-h2   not reported yet
1 host has not reported yet: kubectl lab status ci -n team-a shows when it does.
"
        );
        // No access Secret yet: kubectl lab ssh would fail, so it is not offered.
        status.access_secret = None;
        for h in &mut status.hosts {
            h.addresses.clear();
            h.host_keys.clear();
        }
        let text = reach_text(&status);
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|l| l
                    .starts_with("jumphost   jumphost-1   -         lab-h3   not reported yet")),
            "{text}"
        );
        assert!(!text.contains("kubectl lab ssh ci jumphost-1"), "{text}");
        assert!(
            text.contains("The hosts have not reported their addresses and host keys yet"),
            "{text}"
        );
    }

    #[test]
    fn a_host_bar_fills_with_the_provisioning_steps() {
        let mut p = HostProgress {
            host: "h1".into(),
            state: Some(HostState::Provisioning),
            step: Some(ProvisioningStep::PowerOn),
            ..HostProgress::default()
        };
        let line = host_line(&p, "node", 2, false);
        assert!(line.contains("[############------] 6/9 PowerOn"), "{line}");
        p.state = Some(HostState::Provisioned);
        let line = host_line(&p, "node", 2, false);
        assert!(line.contains("[##################] 9/9 Ready"), "{line}");
    }
}
