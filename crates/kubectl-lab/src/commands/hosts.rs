//! `kubectl lab hosts`: every host, its state and power, who holds it until when, and from
//! when it is free; `--free-at T` keeps the hosts free at T.

use std::io::Write;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::lab::{HostView, views};
use crate::cli::HostsArgs;
use crate::error::Result;
use crate::output::{self, Cell, Colour, Table, phase_colour};
use crate::session::Session;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostRow {
    name: String,
    lab: String,
    profile: String,
    state: String,
    power: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    held_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    /// When the host is free (from `--free-at`, else now); absent when out of service.
    #[serde(skip_serializing_if = "Option::is_none")]
    free_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_reservation: Option<String>,
}

pub async fn run(session: &Session, args: &HostsArgs, out: &mut dyn Write) -> Result<()> {
    let at = match &args.free_at {
        Some(t) => output::parse_instant("--free-at", t, session.now)?,
        None => session.now,
    };
    let hosts = session.labhosts().await?;
    let leases = session.leases().await?;
    let mut all = views(
        &hosts,
        &leases,
        args.lab.as_deref(),
        args.profile.as_deref(),
    );
    if args.free_at.is_some() {
        all.retain(|v| v.free_at(at));
    }
    let rows: Vec<HostRow> = all.iter().map(|v| row(v, session, at)).collect();
    if output::structured(out, session.format, &rows)? {
        return Ok(());
    }
    if rows.is_empty() {
        let which = if args.free_at.is_some() {
            format!("no host is free at {}", output::time(at))
        } else {
            "no LabHosts match".to_string()
        };
        writeln!(out, "{which}")?;
        return Ok(());
    }
    let mut table = Table::new([
        "name",
        "lab",
        "profile",
        "state",
        "power",
        "held by",
        "until",
        "free from",
        "next",
    ]);
    for r in rows {
        let dash = |o: Option<String>| o.unwrap_or_else(|| "-".into());
        table.row(vec![
            r.name.into(),
            r.lab.into(),
            r.profile.into(),
            Cell {
                colour: phase_colour(&r.state),
                text: r.state,
            },
            r.power.into(),
            dash(r.held_by).into(),
            dash(r.until).into(),
            Cell {
                colour: r.free_from.is_none().then_some(Colour::Dim),
                text: dash(r.free_from),
            },
            dash(r.next_reservation).into(),
        ]);
    }
    table.print(out, session.colour)
}

fn row(v: &HostView, session: &Session, at: Timestamp) -> HostRow {
    let now = session.now;
    let holder = v.holder_at(now);
    let free_from = v.free_from(at).map(|t| {
        if t <= now {
            "now".to_string()
        } else {
            format!("{} ({})", output::time(t), output::relative(t, now))
        }
    });
    HostRow {
        name: v.name.clone(),
        lab: v.lab.clone(),
        profile: v.profile.clone(),
        state: v.state.map_or_else(|| "-".into(), |s| format!("{s:?}")),
        power: v.power.clone().unwrap_or_else(|| "-".into()),
        held_by: holder.map(|b| b.key()),
        until: holder.map(|b| output::time(b.end)),
        free_from,
        next_reservation: v
            .next_after(now)
            .map(|b| format!("{} from {}", b.key(), output::time(b.start))),
    }
}
