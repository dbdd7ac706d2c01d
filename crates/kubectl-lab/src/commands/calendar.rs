//! `kubectl lab calendar`: a timeline per host from today (UTC), one character per 6 hours,
//! with a letter per booking that holds or reserves the host in that slot.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::lab::{Booking, HostView, views};
use crate::cli::CalendarArgs;
use crate::error::{Error, Result};
use crate::output::{self, Colour, paint};
use crate::session::Session;

const SLOTS_PER_DAY: i64 = 4;
const SLOT: SignedDuration = SignedDuration::from_secs(86_400 / SLOTS_PER_DAY);
const FREE: char = '.';
const OUT_OF_SERVICE: char = '#';

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HostCalendar {
    host: String,
    profile: String,
    out_of_service: bool,
    bookings: Vec<BookingRow>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BookingRow {
    booking: String,
    role: String,
    phase: String,
    start: String,
    end: String,
}

pub async fn run(session: &Session, args: &CalendarArgs, out: &mut dyn Write) -> Result<()> {
    let hosts = session.labhosts().await?;
    let leases = session.leases().await?;
    let all = views(
        &hosts,
        &leases,
        args.lab.as_deref(),
        args.profile.as_deref(),
    );
    let from = day_start(session.now)?;
    let to = from + SignedDuration::from_secs(86_400 * i64::from(args.days));
    let shown: Vec<HostView> = all
        .into_iter()
        .map(|mut v| {
            v.bookings.retain(|b| b.end > from && b.start < to);
            v
        })
        .collect();
    let rows: Vec<HostCalendar> = shown
        .iter()
        .map(|v| HostCalendar {
            host: v.name.clone(),
            profile: v.profile.clone(),
            out_of_service: v.out_of_service(),
            bookings: v
                .bookings
                .iter()
                .map(|b| BookingRow {
                    booking: b.key(),
                    role: b.role.clone(),
                    phase: phase(b),
                    start: b.start.to_string(),
                    end: b.end.to_string(),
                })
                .collect(),
        })
        .collect();
    if output::structured(out, session.format, &rows)? {
        return Ok(());
    }
    if shown.is_empty() {
        writeln!(out, "no LabHosts match")?;
        return Ok(());
    }
    render(&shown, from, args.days, session, out)
}

fn day_start(t: Timestamp) -> Result<Timestamp> {
    let secs = t.as_second();
    Timestamp::from_second(secs - secs.rem_euclid(86_400))
        .map_err(|e| Error::Api(format!("a day out of range: {e}")))
}

fn phase(b: &Booking) -> String {
    b.phase
        .map_or_else(|| "Pending".into(), |p| format!("{p:?}"))
}

/// Letters A-Z then a-z, by first start; `+` beyond.
fn letters(shown: &[HostView]) -> BTreeMap<String, (char, &Booking)> {
    let mut firsts: Vec<&Booking> = shown.iter().flat_map(|v| v.bookings.iter()).collect();
    firsts.sort_by_key(|b| (b.start, b.key()));
    let alphabet: Vec<char> = ('A'..='Z').chain('a'..='z').collect();
    let mut map = BTreeMap::new();
    for b in firsts {
        let next = map.len();
        map.entry(b.key())
            .or_insert_with(|| (alphabet.get(next).copied().unwrap_or('+'), b));
    }
    map
}

fn render(
    shown: &[HostView],
    from: Timestamp,
    days: u32,
    session: &Session,
    out: &mut dyn Write,
) -> Result<()> {
    let names = letters(shown);
    let width = shown.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
    let slots = i64::from(days) * SLOTS_PER_DAY;
    writeln!(
        out,
        "{} days from {} (UTC), one column per 6 h; {FREE} free, {OUT_OF_SERVICE} maintenance or error",
        days,
        from.strftime("%Y-%m-%d"),
    )?;
    let mut header = format!("{:width$}  ", "HOST");
    for d in 0..i64::from(days) {
        let day = from + SignedDuration::from_secs(86_400 * d);
        header.push_str(&format!("{:<4}", day.strftime("%d").to_string()));
    }
    writeln!(out, "{}", header.trim_end())?;
    let now_slot = session.now.duration_since(from).as_secs() / SLOT.as_secs();
    for v in shown {
        let mut line = format!("{:width$}  ", v.name);
        for s in 0..slots {
            let start = from + SignedDuration::from_secs(SLOT.as_secs() * s);
            let end = start + SLOT;
            let held = v.bookings.iter().find(|b| b.start < end && b.end > start);
            let (c, colour) = match held {
                Some(b) => {
                    let letter = names.get(&b.key()).map_or('+', |(c, _)| *c);
                    let colour = if b.start > session.now {
                        Colour::Yellow
                    } else {
                        Colour::Green
                    };
                    (letter, Some(colour))
                }
                // Out of service now: shown from now on, not in the past.
                None if v.out_of_service() && s >= now_slot => (OUT_OF_SERVICE, Some(Colour::Dim)),
                None => (FREE, None),
            };
            line.push_str(&paint(&c.to_string(), colour, session.colour));
        }
        writeln!(out, "{line}")?;
    }
    if !names.is_empty() {
        writeln!(out)?;
    }
    let mut legend: Vec<&(char, &Booking)> = names.values().collect();
    legend.sort_by_key(|(c, _)| *c);
    for (c, b) in legend {
        let hosts = shown
            .iter()
            .filter(|v| v.bookings.iter().any(|x| x.key() == b.key()))
            .count();
        let reserved = if b.start > session.now {
            " (reserved)"
        } else {
            ""
        };
        writeln!(
            out,
            "{c}  {}  {}{reserved}  {} -> {}  {hosts} host{}",
            b.key(),
            phase(b),
            output::time(b.start),
            output::time(b.end),
            if hosts == 1 { "" } else { "s" },
        )?;
    }
    Ok(())
}
