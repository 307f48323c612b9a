//! The report directory: `verdict.json` and a self-contained `report.html` (inline SVG plots,
//! no scripts, so it renders anywhere and cannot log console errors).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Observed, Verdict};

/// Writes `verdict.json` and `report.html`.
pub fn write(dir: &Path, verdict: &Verdict, observed: &[Observed]) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(verdict).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("verdict.json"), json)?;
    std::fs::write(dir.join("report.html"), html(verdict, observed))
}

fn html(verdict: &Verdict, observed: &[Observed]) -> String {
    let seconds = verdict.duration_secs.ceil().max(1.0) as usize;
    let mut page = String::new();
    let status = if verdict.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>peerlab rehearsal: {name}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.pass{{color:#080}}.fail{{color:#b00;font-weight:bold}}\
         svg{{background:#fafafa;border:1px solid #ddd}}</style></head><body>\
         <h1>{name}: <span class=\"{class}\">{status}</span></h1><p>{file} &middot; {dur:.1} s &middot; {events} events seen &middot; \
         dropped: {kd} in the kernel, {bd} by the publisher &middot; connections left open: {left}</p>",
        name = escape(&verdict.scenario),
        class = if verdict.passed { "pass" } else { "fail" },
        file = escape(&verdict.file),
        dur = verdict.duration_secs,
        events = verdict.events_seen,
        kd = verdict.dropped_in_kernel,
        bd = verdict.dropped_by_publisher,
        left = verdict.peers_left_connected,
    );
    page.push_str("<h2>Expectations</h2><table><tr><th>expectation</th><th>result</th><th>observed</th><th>expected</th></tr>");
    for e in &verdict.expectations {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.name),
            if e.passed { "pass" } else { "fail" },
            if e.passed { "passed" } else { "FAILED" },
            escape(&e.observed),
            escape(&e.expected)
        );
    }
    page.push_str("</table>");
    for error in &verdict.step_errors {
        let _ = write!(page, "<p class=\"fail\">{}</p>", escape(error));
    }
    page.push_str("<h2>Peer groups</h2><table><tr><th>group</th><th>behaviour</th><th>peers</th><th>handshakes</th><th>disconnected by the node</th><th>messages sent</th><th>errors</th></tr>");
    for g in &verdict.groups {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&g.name),
            escape(&g.behaviour),
            g.peers,
            g.handshakes,
            g.disconnected_by_node,
            g.messages_sent,
            escape(&g.errors.join("; "))
        );
    }
    page.push_str("</table>");

    // Messages per second per group and direction.
    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| o.category.as_deref() == Some("message"))
    {
        let group = o.group.clone().unwrap_or_else(|| "other".into());
        let inbound = o
            .body
            .get("meta")
            .and_then(|m| m.get("inbound"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let key = format!("{group} {}", if inbound { "in" } else { "out" });
        bump(
            series.entry(key).or_insert_with(|| vec![0.0; seconds + 1]),
            o.t_secs,
        );
    }
    page.push_str("<h2>P2P messages per second, by peer group and direction</h2>");
    page.push_str(&chart(&series, seconds));

    // Open connections over time. A killed node closes nothing visibly: its connections are
    // gone at each restart.
    let mut changes: Vec<(f64, Change)> = observed
        .iter()
        .filter(|o| o.category.as_deref() == Some("connection"))
        .filter_map(|o| match o.arm.as_deref() {
            Some("inbound") | Some("outbound") => Some((o.t_secs, Change::Opened)),
            Some("closed") => Some((o.t_secs, Change::Closed)),
            _ => None,
        })
        .chain(verdict.restarts_secs.iter().map(|t| (*t, Change::Restart)))
        .collect();
    changes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut open = vec![0.0; seconds + 1];
    let mut level: f64 = 0.0;
    let mut it = changes.iter().peekable();
    for (second, slot) in open.iter_mut().enumerate() {
        while let Some((_, change)) = it.next_if(|(t, _)| *t <= second as f64 + 1.0) {
            level = match change {
                Change::Opened => level + 1.0,
                Change::Closed => (level - 1.0).max(0.0),
                Change::Restart => 0.0,
            };
        }
        *slot = level;
    }
    let restarts = if verdict.restarts_secs.is_empty() {
        String::new()
    } else {
        let at: Vec<String> = verdict
            .restarts_secs
            .iter()
            .map(|t| format!("{t:.1} s"))
            .collect();
        format!("; back to 0 at node restarts: {}", at.join(", "))
    };
    let _ = write!(
        page,
        "<h2>Connections over time</h2><p>traced connects minus closes{restarts}</p>"
    );
    page.push_str(&chart(
        &BTreeMap::from([("connections".to_string(), open)]),
        seconds,
    ));

    // Misbehaviour and disconnect timeline.
    let mut timeline: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| o.category.as_deref() == Some("connection"))
    {
        if let Some(arm @ ("misbehaving" | "closed" | "inbound_evicted")) = o.arm.as_deref() {
            bump(
                timeline
                    .entry(arm.to_string())
                    .or_insert_with(|| vec![0.0; seconds + 1]),
                o.t_secs,
            );
        }
    }
    let alerts: Vec<&Observed> = observed
        .iter()
        .filter(|o| o.category.as_deref() == Some(super::observe::ALERT_CATEGORY))
        .collect();
    for alert in &alerts {
        let kind = alert.arm.clone().unwrap_or_default();
        bump(
            timeline
                .entry(format!("alert {kind}"))
                .or_insert_with(|| vec![0.0; seconds + 1]),
            alert.t_secs,
        );
    }
    page.push_str("<h2>Alerts</h2>");
    if alerts.is_empty() {
        page.push_str("<p>No alert was raised.</p>");
    } else {
        page.push_str("<table><tr><th>time</th><th>group</th><th>alert</th></tr>");
        for alert in &alerts {
            let line = alert
                .body
                .get("line")
                .and_then(|l| l.as_str())
                .unwrap_or_default();
            let _ = write!(
                page,
                "<tr><td>{:.1} s</td><td>{}</td><td>{}</td></tr>",
                alert.t_secs,
                escape(alert.group.as_deref().unwrap_or("-")),
                escape(line)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("<h2>Misbehaviour, disconnects and alerts per second</h2>");
    page.push_str(&chart(&timeline, seconds));
    page.push_str("</body></html>\n");
    page
}

/// A step of the connection count.
enum Change {
    Opened,
    Closed,
    Restart,
}

fn bump(buckets: &mut [f64], t: f64) {
    let i = (t.max(0.0) as usize).min(buckets.len().saturating_sub(1));
    if let Some(slot) = buckets.get_mut(i) {
        *slot += 1.0;
    }
}

/// A line chart of per-second series as inline SVG, with a legend column beside the plot
/// that grows the chart to fit every series; colours repeat with a different dash pattern.
fn chart(series: &BTreeMap<String, Vec<f64>>, seconds: usize) -> String {
    const COLORS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    const DASHES: [&str; 3] = ["none", "6 3", "2 2"];
    const LINE: f64 = 14.0;
    if series.is_empty() {
        return "<p>(nothing to plot)</p>".into();
    }
    let (w, pad, legend) = (1000.0, 40.0, 230.0);
    let h = f64::max(240.0, 2.0 * pad + LINE * (series.len() as f64 + 1.0));
    let right = w - legend;
    let max = series.values().flatten().copied().fold(1.0_f64, f64::max);
    let x = |s: usize| pad + (right - 2.0 * pad) * s as f64 / seconds.max(1) as f64;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * v / max;
    let mut svg =
        format!("<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">");
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#888\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"{t}\" font-size=\"11\">{max}</text><text x=\"4\" y=\"{b}\" font-size=\"11\">0</text>\
         <text x=\"{r}\" y=\"{lbl}\" font-size=\"11\" text-anchor=\"end\">{seconds} s</text>",
        b = h - pad,
        r = right - pad,
        t = pad + 4.0,
        lbl = h - pad + 16.0,
    );
    for (i, (name, values)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let dash = DASHES[(i / COLORS.len()) % DASHES.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(s, v)| format!("{:.1},{:.1}", x(s), y(*v)))
            .collect();
        let ly = pad + LINE * (i as f64 + 1.0);
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\
             <line x1=\"{lx}\" y1=\"{sy}\" x2=\"{lx2}\" y2=\"{sy}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>\
             <text x=\"{tx}\" y=\"{ly}\" font-size=\"12\" fill=\"{color}\">{}</text>",
            points.join(" "),
            escape(name),
            lx = right,
            lx2 = right + 24.0,
            tx = right + 30.0,
            sy = ly - 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
