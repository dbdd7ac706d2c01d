//! Tables, colour, times and durations as a person reads and types them.

use std::io::Write;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use labpods_api::validation::parse_duration;
use serde::Serialize;

use crate::cli::Format;
use crate::error::{Error, Result};

/// Prints `rows` as JSON or YAML (`-o json|yaml`); false for a table (the caller prints it).
pub fn structured<T: Serialize>(out: &mut dyn Write, format: Format, value: &T) -> Result<bool> {
    match format {
        Format::Table => Ok(false),
        Format::Json => {
            let text = serde_json::to_string_pretty(value)
                .map_err(|e| Error::Api(format!("rendering JSON: {e}")))?;
            writeln!(out, "{text}")?;
            Ok(true)
        }
        Format::Yaml => {
            let text = serde_yaml::to_string(value)
                .map_err(|e| Error::Api(format!("rendering YAML: {e}")))?;
            write!(out, "{text}")?;
            Ok(true)
        }
    }
}

/// A kubectl-style table: upper-case headers, columns padded to their widest cell, three
/// spaces apart.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<Cell>>,
}

/// A cell's text and, on a terminal, its colour.
#[derive(Debug, Clone)]
pub struct Cell {
    pub text: String,
    pub colour: Option<Colour>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self { text, colour: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        text.to_string().into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Yellow,
    Red,
    Dim,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Red => "31",
            Colour::Dim => "2",
        }
    }
}

/// `text` in `colour` when `on`.
pub fn paint(text: &str, colour: Option<Colour>, on: bool) -> String {
    match colour {
        Some(c) if on => format!("\x1b[{}m{text}\x1b[0m", c.code()),
        _ => text.to_string(),
    }
}

/// The colour of a phase or state name: green when done, yellow while moving, red when bad.
pub fn phase_colour(phase: &str) -> Option<Colour> {
    match phase {
        "Ready" | "Available" | "Provisioned" | "Released" => Some(Colour::Green),
        "Failed" | "Error" | "Degraded" => Some(Colour::Red),
        "Maintenance" => Some(Colour::Dim),
        "" | "-" => None,
        _ => Some(Colour::Yellow),
    }
}

impl Table {
    pub fn new<const N: usize>(headers: [&str; N]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self, out: &mut dyn Write, colour: bool) -> Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.text.chars().count());
                }
            }
        }
        let last = widths.len().saturating_sub(1);
        let line = |cells: Vec<(String, Option<Colour>)>| {
            let mut text = String::new();
            for (i, (cell, c)) in cells.into_iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                text.push_str(&paint(&cell, c, colour));
                if i < last {
                    text.push_str(&" ".repeat(pad + 3));
                }
            }
            text.trim_end().to_string()
        };
        let headers = self
            .headers
            .iter()
            .map(|h| (h.to_uppercase(), None))
            .collect();
        writeln!(out, "{}", line(headers))?;
        for row in &self.rows {
            let cells = (0..widths.len())
                .map(|i| {
                    row.get(i)
                        .map_or((String::new(), None), |c| (c.text.clone(), c.colour))
                })
                .collect();
            writeln!(out, "{}", line(cells))?;
        }
        Ok(())
    }
}

/// `2026-12-02 18:00Z`: minutes are what bookings are planned in.
pub fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%MZ").to_string()
}

/// `3d4h`, `2h5m`, `45s`: the largest two units of a length.
pub fn length(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// `in 3h` or `5m ago`, relative to `now`.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let d = t.duration_since(now);
    if d.is_negative() {
        format!("{} ago", length(-d))
    } else {
        format!("in {}", length(d))
    }
}

/// A length as the API spells it (`3d`, `1d12h`, `90m`), checked here so that a typo is
/// explained before anything is written.
pub fn parse_length(flag: &str, text: &str) -> Result<SignedDuration> {
    parse_duration(text).ok_or_else(|| {
        Error::Usage(format!(
            "{flag} {text:?}: expected a length in days, hours and minutes, largest first, e.g. 3d, 12h, 1d12h, 90m"
        ))
    })
}

/// How long a command waits: a length, or seconds as kubectl's own `--timeout` takes them
/// (`30s`).
pub fn parse_timeout(flag: &str, text: &str) -> Result<SignedDuration> {
    match text.strip_suffix('s').map(str::parse::<u32>) {
        Some(Ok(secs)) => Ok(SignedDuration::from_secs(secs.into())),
        _ => parse_length(flag, text).map_err(|_| {
            Error::Usage(format!(
                "{flag} {text:?}: expected seconds (30s) or a length in days, hours and minutes, largest first, e.g. 10m, 1h30m"
            ))
        }),
    }
}

/// An instant: RFC 3339 (`2026-12-01T09:00:00Z`), `now`, or `+<length>` from now.
pub fn parse_instant(flag: &str, text: &str, now: Timestamp) -> Result<Timestamp> {
    if text == "now" {
        return Ok(now);
    }
    if let Some(rest) = text.strip_prefix('+') {
        let d = parse_length(flag, rest)?;
        return now
            .checked_add(d)
            .map_err(|_| Error::Usage(format!("{flag} {text:?} is too far away")));
    }
    text.parse::<Timestamp>().map_err(|_| {
        Error::Usage(format!(
            "{flag} {text:?}: expected an RFC 3339 time (2026-12-01T09:00:00Z), `now` or `+2d`"
        ))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn lengths_read_like_a_person_writes_them() {
        assert_eq!(
            length(SignedDuration::from_secs(3 * 86_400 + 4 * 3_600)),
            "3d4h"
        );
        assert_eq!(length(SignedDuration::from_secs(2 * 3_600 + 300)), "2h5m");
        assert_eq!(length(SignedDuration::from_secs(45)), "45s");
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        let later: Timestamp = "2026-12-02T13:00:00Z".parse().unwrap();
        assert_eq!(relative(later, now), "in 3h");
        assert_eq!(relative(now, later), "3h ago");
    }

    #[test]
    fn instants_and_lengths_parse_or_explain() {
        let now: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
        assert_eq!(
            parse_instant("--start", "+1d2h", now).unwrap(),
            "2026-12-03T12:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(parse_instant("--start", "now", now).unwrap(), now);
        let bad = parse_instant("--start", "tomorrow", now).unwrap_err();
        assert!(bad.to_string().contains("--start \"tomorrow\""), "{bad}");
        assert_eq!(bad.exit_code(), 2);
        let bad = parse_length("--for", "3 days").unwrap_err();
        assert!(bad.to_string().contains("e.g. 3d, 12h"), "{bad}");
    }

    #[test]
    fn tables_pad_columns_and_colour_only_when_asked() {
        let mut t = Table::new(["name", "state"]);
        t.row(vec![
            "h1".into(),
            Cell {
                text: "Ready".into(),
                colour: Some(Colour::Green),
            },
        ]);
        t.row(vec!["host-long".into(), "Error".into()]);
        let mut plain = Vec::new();
        t.print(&mut plain, false).unwrap();
        let plain = String::from_utf8(plain).unwrap();
        assert_eq!(
            plain,
            "NAME        STATE\nh1          Ready\nhost-long   Error\n"
        );
        let mut coloured = Vec::new();
        t.print(&mut coloured, true).unwrap();
        assert!(
            String::from_utf8(coloured)
                .unwrap()
                .contains("\x1b[32mReady\x1b[0m")
        );
    }
}
