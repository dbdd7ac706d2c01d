//! The report as one self-contained HTML file (inline CSS and SVG, no script, no fetch):
//! utilization over time, the wait histogram, the occupancy heat map, and the tables.

use std::fmt::Write as _;

use super::report::{Report, wait_label};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 720.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

/// Bars of `values` (0..=max) labelled below; `class` names the chart for tests.
fn bars(id: &str, title: &str, labels: &[String], values: &[f64], max: f64, unit: &str) -> String {
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg id="{id}" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    let n = values.len().max(1) as f64;
    let plot_w = W - 2.0 * PAD;
    let plot_h = H - 2.0 * PAD;
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/><text x="4" y="{PAD}" font-size="11">{top}</text><text x="4" y="{y}" font-size="11">0</text>"##,
        y = H - PAD,
        x2 = W - PAD,
        top = esc(&format!("{max:.0}{unit}")),
    );
    let step = plot_w / n;
    let every = (n / 12.0).ceil().max(1.0) as usize;
    for (i, (v, label)) in values.iter().zip(labels).enumerate() {
        let h = if max > 0.0 {
            plot_h * (v / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let x = PAD + step * i as f64;
        let _ = write!(
            svg,
            r##"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#3b7dd8"><title>{}: {v:.1}{unit}</title></rect>"##,
            H - PAD - h,
            (step * 0.8).max(1.0),
            esc(label)
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" font-size="10">{}</text>"#,
                H - PAD + 14.0,
                esc(label)
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

fn heatmap(report: &Report) -> String {
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let (cw, ch) = (26.0, 22.0);
    let (w, h) = (50.0 + 24.0 * cw, 30.0 + 7.0 * ch);
    let mut svg = format!(
        r#"<figure><figcaption>Occupancy by weekday and hour (UTC): share of hosts booked</figcaption><svg id="occupancy" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}">"#
    );
    for hour in (0..24).step_by(3) {
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="14" font-size="10">{hour:02}</text>"#,
            50.0 + hour as f64 * cw
        );
    }
    for (d, row) in report.occupancy.iter().enumerate() {
        let y = 20.0 + d as f64 * ch;
        let _ = write!(
            svg,
            r#"<text x="4" y="{:.0}" font-size="11">{}</text>"#,
            y + 15.0,
            days.get(d).copied().unwrap_or("")
        );
        for (hour, v) in row.iter().enumerate() {
            // White (idle) to deep blue (full).
            let c = (255.0 - 200.0 * v.clamp(0.0, 1.0)) as u8;
            let _ = write!(
                svg,
                r##"<rect class="cell" x="{:.0}" y="{y:.0}" width="{}" height="{}" fill="rgb({c},{c},255)" stroke="#ddd"><title>{} {hour:02}:00 {:.0}%</title></rect>"##,
                50.0 + hour as f64 * cw,
                cw - 1.0,
                ch - 1.0,
                days.get(d).copied().unwrap_or(""),
                v * 100.0
            );
        }
    }
    svg.push_str("</svg></figure>");
    svg
}

pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>labpods lab usage {from} to {to}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#eef}}td:first-child,td:nth-child(2){{text-align:left}}figure{{margin:1em 0}}figcaption{{font-weight:bold;margin-bottom:4px}}</style></head><body>
<h1>Lab usage</h1><p>{from} to {to} ({hours:.0} hours). Utilization: host-hours booked over host-hours available (hosts in maintenance excluded).</p>"#,
        from = esc(&report.from),
        to = esc(&report.to),
        hours = report.hours
    );
    let t = &report.total;
    let _ = write!(
        out,
        r#"<p id="summary"><b>{:.1}%</b> utilization, <b>{}</b> bookings, mean wait <b>{:.1} h</b>, p95 wait <b>{:.1} h</b>, provisioning success <b>{:.1}%</b>.</p>"#,
        t.utilization * 100.0,
        t.bookings,
        t.wait_mean_hours,
        t.wait_p95_hours,
        t.provisioning_success * 100.0
    );
    let labels: Vec<String> = report
        .daily
        .iter()
        .map(|d| d.day.get(5..).unwrap_or(&d.day).to_string())
        .collect();
    let values: Vec<f64> = report.daily.iter().map(|d| d.utilization * 100.0).collect();
    out.push_str(&bars(
        "utilization",
        "Utilization per day (% of the lab's host-hours)",
        &labels,
        &values,
        100.0,
        "%",
    ));
    let labels: Vec<String> = (0..report.wait_histogram.len()).map(wait_label).collect();
    let values: Vec<f64> = report
        .wait_histogram
        .iter()
        .map(|(_, n)| *n as f64)
        .collect();
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    out.push_str(&bars(
        "waits",
        "Bookings by wait before start",
        &labels,
        &values,
        max,
        "",
    ));
    out.push_str(&heatmap(report));
    out.push_str("<h2>Per lab and profile</h2><table id=\"groups\"><tr><th>lab</th><th>profile</th><th>hosts</th><th>host-hours booked</th><th>utilization</th><th>bookings</th><th>mean wait h</th><th>p95 wait h</th><th>provisioned</th><th>mean provisioning min</th><th>extended</th><th>failed hosts</th><th>healed hosts</th></tr>");
    for g in report.groups.iter().chain(std::iter::once(&report.total)) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}%</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}%</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.lab),
            esc(&g.profile),
            g.hosts,
            g.host_hours_booked,
            g.utilization * 100.0,
            g.bookings,
            g.wait_mean_hours,
            g.wait_p95_hours,
            g.provisioning_success * 100.0,
            g.provisioning_mean_minutes,
            g.extended,
            g.failed_hosts,
            g.healed_hosts
        );
    }
    out.push_str("</table><h2>Top namespaces</h2><table id=\"namespaces\"><tr><th>namespace</th><th>bookings</th><th>host-hours</th></tr>");
    for n in &report.top_namespaces {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            esc(&n.namespace),
            n.bookings,
            n.host_hours
        );
    }
    out.push_str("</table></body></html>\n");
    out
}
