//! `kubectl lab status NAME`: the booking's phase and window, what it waits for and where it
//! stands in the queue, per-host progress, conditions and recent events.

use std::io::Write;

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use labpods_api::v1alpha1::{PodRequest, PodRequestPhase};
use serde::Serialize;

use crate::error::Result;
use crate::output::{self, Cell, Table, phase_colour};
use crate::session::Session;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusView {
    namespace: String,
    name: String,
    phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<Queue>,
    hosts: Vec<HostRow>,
    conditions: Vec<ConditionRow>,
    events: Vec<EventRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Queue {
    /// 1 for the first request waiting.
    position: usize,
    waiting: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_start: Option<String>,
}

#[derive(Debug, Serialize)]
struct HostRow {
    host: String,
    role: String,
    /// `<role>-<n>`, as `kubectl lab ssh` takes it.
    hostname: String,
    /// The first address the booted host reported (phone-home).
    address: String,
    state: String,
    step: String,
    message: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionRow {
    #[serde(rename = "type")]
    type_: String,
    status: String,
    reason: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct EventRow {
    last: String,
    #[serde(rename = "type")]
    type_: String,
    reason: String,
    object: String,
    message: String,
}

fn is_waiting(pr: &PodRequest) -> bool {
    pr.metadata.deletion_timestamp.is_none()
        && matches!(
            pr.status.as_ref().and_then(|s| s.phase),
            None | Some(PodRequestPhase::Pending)
        )
}

pub async fn run(session: &Session, name: &str, out: &mut dyn Write) -> Result<()> {
    let pr = session.podrequest(name).await?;
    let lease = session.lease(name).await?;
    let status = pr.status.clone().unwrap_or_default();
    let queue = if is_waiting(&pr) {
        // The scheduler's planning order (labpods-scheduler plan.rs `order`; the operator
        // sets no fairness window): creation time, then namespace and name. Waiting requests
        // carry no start of their own to sort by: the operator persists no estimate for them.
        let mut waiting: Vec<PodRequest> = session
            .all_podrequests()
            .await?
            .into_iter()
            .filter(is_waiting)
            .collect();
        waiting.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.namespace(),
                p.name_any(),
            )
        });
        let position = waiting
            .iter()
            .position(|p| p.uid() == pr.uid())
            .map_or(waiting.len() + 1, |i| i + 1);
        Some(Queue {
            position,
            waiting: waiting.len().max(position),
            // The scheduler's estimate while it waits; the hosts' start once it binds.
            estimated_start: status
                .estimated_start
                .as_ref()
                .or(status.scheduled_start.as_ref())
                .map(|t| output::time(t.0)),
        })
    } else {
        None
    };
    let assigned = |host: &str| status.hosts.iter().find(|a| a.host == host);
    let hostname = |host: &str| {
        assigned(host)
            .and_then(|a| a.hostname.clone())
            .unwrap_or_else(|| "-".into())
    };
    let address = |host: &str| {
        assigned(host)
            .and_then(|a| a.addresses.first().cloned())
            .unwrap_or_else(|| "-".into())
    };
    let mut hosts: Vec<HostRow> = Vec::new();
    if let Some(lease) = &lease {
        for h in &lease.spec.hosts {
            let p = lease
                .status
                .as_ref()
                .and_then(|s| s.hosts.iter().find(|p| p.host == h.host));
            hosts.push(HostRow {
                host: h.host.clone(),
                role: h.role.clone(),
                hostname: hostname(&h.host),
                address: address(&h.host),
                state: p
                    .and_then(|p| p.state)
                    .map_or_else(|| "-".into(), |s| format!("{s:?}")),
                step: p
                    .and_then(|p| p.step)
                    .map_or_else(|| "-".into(), |s| format!("{s:?}")),
                message: p.and_then(|p| p.message.clone()).unwrap_or_default(),
            });
        }
    } else {
        for h in &status.hosts {
            hosts.push(HostRow {
                host: h.host.clone(),
                role: h.role.clone(),
                hostname: hostname(&h.host),
                address: address(&h.host),
                state: "-".into(),
                step: "-".into(),
                message: String::new(),
            });
        }
    }
    let conditions = status
        .conditions
        .iter()
        .map(|c| ConditionRow {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let events = events(session, name).await;
    let view = StatusView {
        namespace: session.namespace.clone(),
        name: name.to_string(),
        phase: status
            .phase
            .map_or_else(|| "Pending".into(), |p| format!("{p:?}")),
        message: status.message.clone(),
        start: status.scheduled_start.as_ref().map(|t| output::time(t.0)),
        end: status.scheduled_end.as_ref().map(|t| output::time(t.0)),
        queue,
        hosts,
        conditions,
        events,
    };
    if output::structured(out, session.format, &view)? {
        return Ok(());
    }
    print(session, &view, &status, out)
}

fn print(
    session: &Session,
    view: &StatusView,
    status: &labpods_api::v1alpha1::PodRequestStatus,
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(
        out,
        "PodRequest {}/{}: {}",
        view.namespace,
        view.name,
        output::paint(&view.phase, phase_colour(&view.phase), session.colour)
    )?;
    if let Some(m) = &view.message {
        writeln!(out, "  {m}")?;
    }
    match (&status.scheduled_start, &status.scheduled_end) {
        (Some(s), Some(e)) => writeln!(
            out,
            "Window: {} -> {} (ends {})",
            output::time(s.0),
            output::time(e.0),
            output::relative(e.0, session.now)
        )?,
        (Some(s), None) => writeln!(out, "Window: from {}", output::time(s.0))?,
        _ => {}
    }
    if let Some(q) = &view.queue {
        let estimate = q.estimated_start.as_ref().map_or_else(
            || "no start estimated yet".to_string(),
            |t| format!("estimated start {t}"),
        );
        writeln!(
            out,
            "Queue: position {} of {} waiting (first come, first served); {estimate}",
            q.position, q.waiting
        )?;
    }
    writeln!(out)?;
    if view.hosts.is_empty() {
        writeln!(out, "Hosts: none assigned yet")?;
    } else {
        let mut t = Table::new([
            "host", "role", "hostname", "address", "state", "step", "message",
        ]);
        for h in &view.hosts {
            t.row(vec![
                h.host.as_str().into(),
                h.role.as_str().into(),
                h.hostname.as_str().into(),
                h.address.as_str().into(),
                Cell {
                    text: h.state.clone(),
                    colour: phase_colour(&h.state),
                },
                h.step.as_str().into(),
                h.message.as_str().into(),
            ]);
        }
        t.print(out, session.colour)?;
    }
    if !view.conditions.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(["condition", "status", "reason", "message"]);
        for c in &view.conditions {
            t.row(vec![
                c.type_.as_str().into(),
                c.status.as_str().into(),
                c.reason.as_str().into(),
                c.message.as_str().into(),
            ]);
        }
        t.print(out, session.colour)?;
    }
    if !view.events.is_empty() {
        writeln!(out)?;
        let mut t = Table::new(["last seen", "type", "reason", "object", "message"]);
        for e in &view.events {
            t.row(vec![
                e.last.as_str().into(),
                e.type_.as_str().into(),
                e.reason.as_str().into(),
                e.object.as_str().into(),
                e.message.as_str().into(),
            ]);
        }
        t.print(out, session.colour)?;
    }
    Ok(())
}

/// The events about the PodRequest and its Lease (same name), oldest first. Events are a
/// help, not the answer: a user who may not list them still gets the rest.
async fn events(session: &Session, name: &str) -> Vec<EventRow> {
    let api: Api<Event> = Api::namespaced(session.client.clone(), &session.namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let Ok(list) = api.list(&params).await else {
        return Vec::new();
    };
    let mut items: Vec<(Option<k8s_openapi::jiff::Timestamp>, EventRow)> = list
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object
                .api_version
                .as_deref()
                .is_some_and(|v| v.starts_with("labpods.dev/"))
        })
        .map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let row = EventRow {
                last: when.map_or_else(|| "-".into(), |t| output::relative(t, session.now)),
                type_: e.type_.unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
                object: e.involved_object.kind.unwrap_or_default(),
                message: e.message.unwrap_or_default(),
            };
            (when, row)
        })
        .collect();
    items.sort_by_key(|(when, _)| *when);
    items.into_iter().map(|(_, row)| row).collect()
}
