//! The README's "Troubleshooting by state and condition" table explains everything a lab
//! operator can see in a status: every LabHost state, every Lease and PodRequest phase (as
//! the CRDs list them, so a new variant needs its row) and every condition type of
//! `labpods_api::conditions`. No apiserver: it reads the README and the CRDs as generated.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use labpods_tests::workspace_root;
use serde_json::Value;

const HEADING: &str = "### Troubleshooting by state and condition";

/// One row: the kinds it is about, the states or phases it names (words outside backticks),
/// the conditions it names (`Type=...` or `Type` in backticks), and the two explaining cells.
#[derive(Debug)]
struct Row {
    kinds: BTreeSet<String>,
    states: BTreeSet<String>,
    conditions: BTreeSet<String>,
    means: String,
    todo: String,
}

fn rows(readme: &str) -> Result<Vec<Row>> {
    let (_, section) = readme
        .split_once(HEADING)
        .with_context(|| format!("README.md has no {HEADING:?}"))?;
    let mut lines = section
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'));
    let header = lines.next().context("the table has no header")?;
    ensure!(
        header == "| object | state / condition | means | do |",
        "unexpected header {header:?}"
    );
    lines.next(); // |---|---|...
    lines
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let [kinds, state, means, todo] = cells[..] else {
                anyhow::bail!("not four cells: {line:?}");
            };
            let mut states = BTreeSet::new();
            let mut conditions = BTreeSet::new();
            // Odd pieces are inside backticks.
            for (i, piece) in state.split('`').enumerate() {
                if i % 2 == 1 {
                    let name = piece.split('=').next().unwrap_or(piece);
                    conditions.insert(name.to_owned());
                } else {
                    states.extend(
                        piece
                            .split(|c: char| !c.is_ascii_alphanumeric())
                            .filter(|w| !w.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            Ok(Row {
                kinds: kinds.split(", ").map(str::to_owned).collect(),
                states,
                conditions,
                means: means.to_owned(),
                todo: todo.to_owned(),
            })
        })
        .collect()
}

/// The enum of `status.<field>` in a CRD's schema: what `kubectl get` can show.
fn status_enum(crd: &Value, field: &str) -> Result<Vec<String>> {
    let values = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"][field]["enum"]
        .as_array()
        .with_context(|| format!("no enum at status.{field}"))?;
    Ok(values
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect())
}

/// Every `pub const NAME: &str = "Type";` of conditions.rs but the status values True/False.
fn condition_types() -> Result<Vec<String>> {
    let source =
        std::fs::read_to_string(workspace_root().join("crates/labpods-api/src/conditions.rs"))?;
    let types: Vec<String> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter(|l| !l.starts_with("TRUE:") && !l.starts_with("FALSE:"))
        .filter_map(|l| l.split_once(": &str = \""))
        .filter_map(|(_, rest)| rest.strip_suffix("\";"))
        .map(str::to_owned)
        .collect();
    Ok(types)
}

#[test]
fn troubleshooting_table_explains_every_state_phase_and_condition() -> Result<()> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md"))?;
    let rows = rows(&readme)?;
    let mut missing = Vec::new();

    let crds = labpods_api::crds();
    for (kind, field) in [
        ("LabHost", "state"),
        ("Lease", "phase"),
        ("PodRequest", "phase"),
    ] {
        let crd = crds
            .iter()
            .find(|c| c.spec.names.kind == kind)
            .with_context(|| format!("no CRD of kind {kind}"))?;
        let values = status_enum(&serde_json::to_value(crd)?, field)?;
        ensure!(values.len() >= 7, "{kind} status.{field}: {values:?}");
        for value in values {
            if !rows
                .iter()
                .any(|r| r.kinds.contains(kind) && r.states.contains(&value))
            {
                missing.push(format!("{kind} {field} {value}"));
            }
        }
    }

    let types = condition_types()?;
    // Ready, Scheduled, Invalid, Degraded, ExpiringSoon, ExtensionRejected, BmcReachable,
    // Quarantined, BookingFailed, ImageVerified, Authentic at the time of writing.
    ensure!(types.len() >= 11, "condition types found: {types:?}");
    for t in types {
        if !rows.iter().any(|r| r.conditions.contains(&t)) {
            missing.push(format!("condition {t}"));
        }
    }

    let empty: Vec<_> = rows
        .iter()
        .filter(|r| r.means.is_empty() || r.todo.is_empty())
        .collect();
    ensure!(
        missing.is_empty() && empty.is_empty(),
        "README.md {HEADING:?} needs a row (object | state / condition | means | do) for: \
         {missing:?}; rows without a meaning or an action: {empty:?}"
    );
    Ok(())
}
