//! The report directory: `verdict.json` (the [`Verdict`] as serde writes it) and
//! `report.html`, the page a person reads.
//!
//! The page is rendered from the minijinja template `report.html` beside this file (embedded
//! at compile time) and holds three charts drawn with plotters' SVG backend: P2P messages per
//! second by peer group and direction, open connections with node restarts, and misbehaviour,
//! disconnects and alerts per second (each alert kind its own series). Invariants:
//! - self-contained: inline CSS and inline SVG, no scripts and no external resources, so it
//!   renders anywhere (a file:// URL, an archived CI artifact) and cannot log console errors;
//! - escaped: HTML autoescaping is on for the whole template, and the only values passed as
//!   markup are the charts, whose text plotters escapes itself;
//! - every chart has a title, an x axis in seconds since time zero, a y axis with its unit and
//!   a legend naming each series; a chart with nothing to plot is a note, not an empty frame.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use super::observe::ALERT_CATEGORY;
use super::{Observed, Verdict};

/// The page template.
const TEMPLATE: &str = include_str!("report.html");

/// Writes `verdict.json` and `report.html`.
pub fn write(dir: &Path, verdict: &Verdict, observed: &[Observed]) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(verdict).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("verdict.json"), json)?;
    let page = html(verdict, observed).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.html"), page)
}

/// What the template sees.
#[derive(Serialize)]
struct Page<'a> {
    verdict: &'a Verdict,
    /// The run's duration, for reading (`12.3 s`).
    duration: String,
    charts: Vec<ChartView>,
    alerts: Vec<AlertRow>,
    /// A topology's node names (the propagation table's columns).
    node_names: Vec<String>,
    /// The propagation table, one row per block or transaction.
    propagation: Vec<PropagationRow>,
}

/// One row of the propagation table: an item and, per node, when it arrived there.
#[derive(Serialize)]
struct PropagationRow {
    item: String,
    first: String,
    /// Per node (in `node_names` order): `+0.123 s`, or `-` when not seen.
    cells: Vec<String>,
}

/// One chart section.
#[derive(Serialize)]
struct ChartView {
    title: &'static str,
    /// A line under the heading saying what is counted.
    caption: String,
    /// The inline SVG, marked safe; `None` when there is nothing to plot.
    svg: Option<Value>,
    /// The note shown instead of an empty chart.
    empty: String,
}

/// One row of the alerts table.
#[derive(Serialize)]
struct AlertRow {
    time: String,
    group: String,
    kind: String,
    line: String,
}

/// The page for a run.
fn html(verdict: &Verdict, observed: &[Observed]) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    // Escape everything, whatever the template is named.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("report.html", TEMPLATE)?;
    let seconds = verdict.duration_secs.ceil().max(1.0);
    let charts = [
        messages_plot(observed, seconds),
        connections_plot(verdict, observed, seconds),
        timeline_plot(observed, seconds),
    ]
    .into_iter()
    .map(Plot::view)
    .collect();
    let alerts = observed
        .iter()
        .filter(|o| o.category.as_deref() == Some(ALERT_CATEGORY))
        .map(|alert| AlertRow {
            time: format!("{:.1} s", alert.t_secs),
            group: alert.group.clone().unwrap_or_else(|| "-".into()),
            kind: alert.arm.clone().unwrap_or_default(),
            line: alert
                .body
                .get("line")
                .and_then(|l| l.as_str())
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let node_names: Vec<String> = verdict
        .nodes
        .iter()
        .filter_map(|n| n.split_whitespace().next().map(str::to_string))
        .collect();
    let propagation = verdict
        .propagation
        .iter()
        .map(|row| PropagationRow {
            item: match row.height {
                Some(height) => format!("{} {height} ({:.12}…)", row.kind, row.id),
                None => format!("{} {:.12}…", row.kind, row.id),
            },
            first: format!("{:.3} s", row.first_secs),
            cells: node_names
                .iter()
                .map(|n| match row.after_first_secs.get(n) {
                    Some(after) => format!("+{after:.3} s"),
                    None => "-".into(),
                })
                .collect(),
        })
        .collect();
    let page = Page {
        verdict,
        duration: format!("{:.1} s", verdict.duration_secs),
        charts,
        alerts,
        node_names,
        propagation,
    };
    env.get_template("report.html")?
        .render(Value::from(Serde(&page)))
}

/// A chart before drawing: what it is called, its unit and its series.
struct Plot {
    title: &'static str,
    caption: String,
    /// The y axis description, with its unit.
    y_desc: &'static str,
    /// The note when there is no series.
    empty: &'static str,
    /// The x axis ends here (seconds since time zero).
    x_max: f64,
    series: Vec<Series>,
}

/// One series of a chart, named in its legend.
struct Series {
    label: String,
    points: Vec<(f64, u64)>,
    mark: Mark,
}

/// How a series is drawn.
#[derive(Clone, Copy, PartialEq)]
enum Mark {
    /// A line through the points.
    Line,
    /// A line with a triangle at each non-zero point, so single events stand out.
    Spikes,
    /// A dashed vertical rule across the plot at each point's x.
    Rules,
}

/// Tableau's ten colours: distinct, and readable on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const WIDTH: u32 = 1000;
const FONT: &str = "sans-serif";
/// Pixel height of a legend row (plotters' 15-point labels are drawn at about 12 px).
const LEGEND_ROW: u32 = 19;

impl Plot {
    /// Draws the chart, or says why there is none.
    fn view(self) -> ChartView {
        let svg = if self.series.is_empty() {
            None
        } else {
            Some(match self.svg() {
                Ok(svg) => Value::from_safe_string(svg),
                Err(e) => Value::from(format!("(the chart could not be drawn: {e})")),
            })
        };
        ChartView {
            title: self.title,
            caption: self.caption,
            svg,
            empty: format!("nothing to plot ({}).", self.empty),
        }
    }

    /// The chart as an SVG document. The legend stands in a column right of the plot, as
    /// wide as its longest label, and the chart grows taller to fit its rows.
    fn svg(&self) -> Result<String, String> {
        let longest = self
            .series
            .iter()
            .map(|s| s.label.chars().count())
            .max()
            .unwrap_or(0) as u32;
        let legend_width = (longest * 7 + 70).clamp(160, 380);
        let height = (140 + LEGEND_ROW * self.series.len() as u32).max(380);
        let y_max = self
            .series
            .iter()
            .filter(|s| s.mark != Mark::Rules)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .max()
            .unwrap_or(0);
        // Headroom above the highest point, and at least one step.
        let y_top = (y_max + y_max / 10).max(y_max + 1);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            // Plotters clips every shape to the area it is drawn on, so the legend gets its own.
            let (left, legend) = root.split_horizontally(WIDTH - legend_width);
            let mut chart = ChartBuilder::on(&left)
                .caption(self.title, (FONT, 20))
                .margin(10)
                .x_label_area_size(45)
                .y_label_area_size(65)
                .build_cartesian_2d(0.0..self.x_max, 0..y_top)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("time since start (s)")
                .y_desc(self.y_desc)
                .axis_desc_style((FONT, 16))
                .label_style((FONT, 14))
                .x_labels(12)
                .y_labels(8)
                .x_label_formatter(&|x| format!("{x}"))
                .light_line_style(TRANSPARENT)
                .bold_line_style(RGBColor(225, 225, 225))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, series) in self.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let style = color.stroke_width(2);
                match series.mark {
                    Mark::Line | Mark::Spikes => {
                        chart
                            .draw_series(LineSeries::new(series.points.iter().copied(), style))
                            .map_err(|e| e.to_string())?;
                    }
                    Mark::Rules => {
                        chart
                            .draw_series(series.points.iter().map(|p| {
                                DashedPathElement::new([(p.0, 0), (p.0, y_top)], 6, 4, style)
                            }))
                            .map_err(|e| e.to_string())?;
                    }
                }
                if series.mark == Mark::Spikes {
                    chart
                        .draw_series(
                            series
                                .points
                                .iter()
                                .filter(|p| p.1 > 0)
                                .map(|p| TriangleMarker::new(*p, 6, color.filled())),
                        )
                        .map_err(|e| e.to_string())?;
                }
            }
            // The legend, its top level with the plot's.
            let top = chart.plotting_area().get_pixel_range().1.start;
            let rows = self.series.len() as i32;
            let row = LEGEND_ROW as i32;
            let box_width = legend_width as i32 - 12;
            legend
                .draw(&Rectangle::new(
                    [(0, top), (box_width, top + rows * row + 12)],
                    RGBColor(200, 200, 200).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            let label_style =
                TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
            for (i, series) in self.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                let style = color.stroke_width(2);
                let y = top + 6 + row * i as i32 + row / 2;
                let (x0, x1) = (10, 36);
                match series.mark {
                    Mark::Line => legend.draw(&PathElement::new([(x0, y), (x1, y)], style)),
                    Mark::Spikes => legend
                        .draw(&PathElement::new([(x0, y), (x1, y)], style))
                        .and_then(|_| {
                            legend.draw(&TriangleMarker::new(((x0 + x1) / 2, y), 6, color.filled()))
                        }),
                    Mark::Rules => {
                        legend.draw(&DashedPathElement::new([(x0, y), (x1, y)], 6, 4, style))
                    }
                }
                .map_err(|e| e.to_string())?;
                legend
                    .draw(&Text::new(
                        series.label.as_str(),
                        (x1 + 8, y),
                        label_style.clone(),
                    ))
                    .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        Ok(svg)
    }
}

/// Counts per second: one bucket per started second up to `seconds`, later events in the last.
fn bump(buckets: &mut [u64], t: f64) {
    let i = (t.max(0.0) as usize).min(buckets.len().saturating_sub(1));
    if let Some(slot) = buckets.get_mut(i) {
        *slot += 1;
    }
}

/// Per-second buckets as points at the middle of their second.
fn rate_points(buckets: &[u64]) -> Vec<(f64, u64)> {
    buckets
        .iter()
        .enumerate()
        .map(|(i, n)| (i as f64 + 0.5, *n))
        .collect()
}

/// Adds `t` to the per-second buckets of series `key`.
fn count_into(series: &mut BTreeMap<String, Vec<u64>>, key: String, t: f64, seconds: f64) {
    bump(
        series
            .entry(key)
            .or_insert_with(|| vec![0; seconds as usize]),
        t,
    );
}

/// P2P messages per second, one series per peer group and direction.
fn messages_plot(observed: &[Observed], seconds: f64) -> Plot {
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| o.category.as_deref() == Some("message"))
    {
        let group = o.group.as_deref().unwrap_or("other");
        let inbound = o
            .body
            .get("meta")
            .and_then(|m| m.get("inbound"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let key = format!("{group} {}", if inbound { "in" } else { "out" });
        count_into(&mut counts, key, o.t_secs, seconds);
    }
    Plot {
        title: "P2P messages per second, by peer group and direction",
        caption: "Traced P2P messages per second; in = received by the node from the group, \
                  out = sent by the node to it (\"other\": peers of no scenario group)."
            .into(),
        y_desc: "messages/s",
        empty: "no P2P message was traced",
        x_max: seconds,
        series: counts
            .into_iter()
            .map(|(label, buckets)| Series {
                label,
                points: rate_points(&buckets),
                mark: Mark::Line,
            })
            .collect(),
    }
}

/// A step of the connection count.
enum Change {
    Opened,
    Closed,
    Restart,
}

/// Open connections over time: traced connects minus closes, back to zero at each node
/// restart (a killed node closes nothing visibly), with the restarts as rules.
fn connections_plot(verdict: &Verdict, observed: &[Observed], seconds: f64) -> Plot {
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
    let mut series = Vec::new();
    if !changes.is_empty() {
        let mut level: u64 = 0;
        let mut points = vec![(0.0, 0)];
        for (t, change) in &changes {
            let t = t.clamp(0.0, seconds);
            points.push((t, level));
            level = match change {
                Change::Opened => level + 1,
                Change::Closed => level.saturating_sub(1),
                Change::Restart => 0,
            };
            points.push((t, level));
        }
        points.push((seconds, level));
        series.push(Series {
            label: "open connections".into(),
            points,
            mark: Mark::Line,
        });
    }
    if !verdict.restarts_secs.is_empty() {
        series.push(Series {
            label: "node restart".into(),
            points: verdict
                .restarts_secs
                .iter()
                .map(|t| (t.clamp(0.0, seconds), 0))
                .collect(),
            mark: Mark::Rules,
        });
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
    Plot {
        title: "Connections over time",
        caption: format!("Traced connects minus closes{restarts}."),
        y_desc: "open connections",
        empty: "no connection was traced and the node was not restarted",
        x_max: seconds,
        series,
    }
}

/// Misbehaviour, disconnects and evictions per second, and alerts per second by kind.
fn timeline_plot(observed: &[Observed], seconds: f64) -> Plot {
    let mut events: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut alerts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for o in observed {
        match (o.category.as_deref(), o.arm.as_deref()) {
            (Some("connection"), Some(arm @ ("misbehaving" | "closed" | "inbound_evicted"))) => {
                count_into(&mut events, format!("connection.{arm}"), o.t_secs, seconds)
            }
            (Some(ALERT_CATEGORY), arm) => count_into(
                &mut alerts,
                format!("alert: {}", arm.unwrap_or("?")),
                o.t_secs,
                seconds,
            ),
            _ => {}
        }
    }
    let lines = events.into_iter().map(|(label, buckets)| Series {
        label,
        points: rate_points(&buckets),
        mark: Mark::Line,
    });
    let spikes = alerts.into_iter().map(|(label, buckets)| Series {
        label,
        points: rate_points(&buckets),
        mark: Mark::Spikes,
    });
    Plot {
        title: "Misbehaviour, disconnects and alerts per second",
        caption: "Traced connection events per second, and the alerts the collector's \
                  heuristics raised per second by kind (triangles mark seconds with alerts)."
            .into(),
        y_desc: "events/s",
        empty: "no misbehaviour, disconnect, eviction or alert",
        x_max: seconds,
        series: lines.chain(spikes).collect(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::verdict::{ExpectationResult, GroupResult};
    use super::*;

    fn verdict(expectations: Vec<ExpectationResult>) -> Verdict {
        Verdict {
            scenario: "ping-flood".into(),
            file: "scenarios/ping-flood.toml".into(),
            passed: expectations.iter().all(|e| e.passed),
            duration_secs: 12.4,
            startup_secs: 3.2,
            expectations,
            groups: vec![GroupResult {
                name: "flooders".into(),
                behaviour: "ping-flood".into(),
                peers: 2,
                handshakes: 2,
                disconnected_by_node: 1,
                messages_sent: 400,
                errors: vec!["connection reset".into()],
            }],
            step_errors: vec![],
            restarts_secs: vec![],
            events_seen: 0,
            dropped_in_kernel: 0,
            dropped_by_publisher: 0,
            peers_left_connected: 0,
            stack: "embedded".into(),
            nodes: vec![],
            propagation: vec![],
            relay: vec![],
            notes: vec![],
        }
    }

    fn expectation(name: &str, passed: bool) -> ExpectationResult {
        ExpectationResult {
            name: name.into(),
            kind: "event".into(),
            passed,
            observed: "3 events".into(),
            expected: "at least 1 `connection.misbehaving` events by 10s".into(),
        }
    }

    fn event(
        t_secs: f64,
        category: &str,
        arm: &str,
        group: Option<&str>,
        body: serde_json::Value,
    ) -> Observed {
        Observed {
            t_secs,
            category: Some(category.into()),
            arm: Some(arm.into()),
            body,
            peer_id: Some(1),
            peer_addr: Some("127.0.0.1:18444".into()),
            group: group.map(str::to_string),
            node: None,
        }
    }

    /// A run with messages both ways from two groups, connections, misbehaviour, an eviction,
    /// a restart and two alerts.
    fn busy_run() -> (Verdict, Vec<Observed>) {
        let mut v = verdict(vec![expectation("flooder is disconnected", true)]);
        v.restarts_secs = vec![6.0];
        let mut observed = Vec::new();
        let inbound = json!({"meta": {"inbound": true}});
        let outbound = json!({"meta": {"inbound": false}});
        for i in 0..40 {
            let t = f64::from(i) * 0.1 + 1.0;
            observed.push(event(
                t,
                "message",
                "ping",
                Some("flooders"),
                inbound.clone(),
            ));
            if i % 3 == 0 {
                observed.push(event(
                    t,
                    "message",
                    "pong",
                    Some("flooders"),
                    outbound.clone(),
                ));
            }
        }
        for i in 0..12 {
            let t = f64::from(i);
            observed.push(event(t, "message", "inv", Some("honest"), inbound.clone()));
        }
        for t in [0.5, 0.7, 7.0] {
            observed.push(event(t, "connection", "inbound", None, json!({})));
        }
        observed.push(event(3.0, "connection", "misbehaving", None, json!({})));
        observed.push(event(3.2, "connection", "closed", None, json!({})));
        observed.push(event(8.0, "connection", "inbound_evicted", None, json!({})));
        for (t, kind) in [(2.5, "ping_spammer"), (3.1, "peer_disconnected")] {
            let mut alert = event(
                t,
                ALERT_CATEGORY,
                kind,
                Some("flooders"),
                json!({"line": format!("{kind} peer=1 <addr>")}),
            );
            alert.group = Some("flooders".into());
            observed.push(alert);
        }
        (v, observed)
    }

    #[test]
    fn the_page_lists_each_expectation_and_its_result() {
        let v = verdict(vec![
            expectation("flooder is disconnected", true),
            expectation("no alert for honest peers", false),
        ]);
        let page = html(&v, &[]).expect("renders");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("ping-flood: <span class=\"fail\">FAILED</span>"));
        let rows: Vec<&str> = page.lines().filter(|l| l.starts_with("<tr><td>")).collect();
        assert!(rows.iter().any(|r| r.contains("flooder is disconnected")
            && r.contains(">passed<")
            && r.contains("3 events")));
        assert!(rows
            .iter()
            .any(|r| r.contains("no alert for honest peers") && r.contains(">FAILED<")));
        for shown in [
            "scenarios&#x2f;ping-flood.toml",
            "12.4 s",
            "connection reset",
            "No alert was raised.",
        ] {
            assert!(page.contains(shown), "{shown} missing from the page");
        }
    }

    #[test]
    fn text_from_scenarios_and_events_is_escaped() {
        let hostile = "<script>alert(1)</script>";
        let mut v = verdict(vec![expectation(hostile, false)]);
        v.step_errors = vec![format!("step failed: {hostile}")];
        v.notes = vec![format!("note {hostile}")];
        v.groups[0].name = hostile.into();
        let observed = [
            event(1.0, "message", "ping", Some(hostile), json!({"meta": {}})),
            event(
                1.5,
                ALERT_CATEGORY,
                "ping_spammer",
                Some(hostile),
                json!({"line": hostile}),
            ),
        ];
        let page = html(&v, &observed).expect("renders");
        assert!(!page.to_lowercase().contains("<script"), "{page}");
        // In the tables (minijinja) and in the chart legends (plotters).
        assert!(
            page.matches("&lt;script&gt;alert(1)").count() >= 6,
            "{page}"
        );
    }

    /// Each chart section's SVG, in page order.
    fn svgs(page: &str) -> Vec<&str> {
        page.match_indices("<svg")
            .map(|(start, _)| {
                let end = start + page[start..].find("</svg>").expect("closed") + 6;
                &page[start..end]
            })
            .collect()
    }

    #[test]
    fn each_chart_has_axes_with_units_and_a_legend_of_its_series() {
        let (v, observed) = busy_run();
        let page = html(&v, &observed).expect("renders");
        let charts = svgs(&page);
        assert_eq!(charts.len(), 3, "three charts");
        let expected: [(&str, &str, &[&str]); 3] = [
            (
                "P2P messages per second, by peer group and direction",
                "messages/s",
                &["flooders in", "flooders out", "honest in"],
            ),
            (
                "Connections over time",
                "open connections",
                &["open connections", "node restart"],
            ),
            (
                "Misbehaviour, disconnects and alerts per second",
                "events/s",
                &[
                    "connection.misbehaving",
                    "connection.closed",
                    "connection.inbound_evicted",
                    "alert: ping_spammer",
                    "alert: peer_disconnected",
                ],
            ),
        ];
        for (svg, (title, unit, legend)) in charts.iter().zip(expected) {
            let texts: Vec<&str> = svg
                .split("<text")
                .skip(1)
                .filter_map(|t| t.split_once('>').map(|(_, rest)| rest))
                .filter_map(|t| t.split_once("</text>").map(|(text, _)| text.trim()))
                .collect();
            for wanted in [title, "time since start (s)", unit].iter().chain(legend) {
                assert!(
                    texts.contains(wanted),
                    "{title}: no {wanted:?} in {texts:?}"
                );
            }
            // Ticks: numbers along both axes.
            let numbers = texts.iter().filter(|t| t.parse::<f64>().is_ok()).count();
            assert!(numbers >= 6, "{title}: too few tick labels in {texts:?}");
            assert!(svg.contains("<polyline"), "{title}: no line drawn");
        }
        // Alerts are marked on the timeline and listed with their time, group and line.
        assert!(charts[2].contains("<polygon"), "alert triangles");
        assert!(page.contains(
            "<tr><td class=\"num\">2.5 s</td><td>flooders</td><td>ping_spammer</td>\
             <td><code>ping_spammer peer=1 &lt;addr&gt;</code></td></tr>"
        ));
        assert!(page.contains("back to 0 at node restarts: 6.0 s"));
    }

    #[test]
    fn an_empty_run_says_there_is_nothing_to_plot() {
        let v = verdict(vec![]);
        let page = html(&v, &[]).expect("renders");
        assert!(svgs(&page).is_empty(), "no empty chart frames");
        assert_eq!(page.matches("nothing to plot (").count(), 3);
        assert!(page.contains("The scenario has no expectations."));
    }

    #[test]
    fn write_puts_the_verdict_and_the_page_in_the_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let (v, observed) = busy_run();
        write(dir.path(), &v, &observed).expect("written");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("verdict.json")).unwrap())
                .expect("JSON");
        assert_eq!(json["scenario"], "ping-flood");
        assert_eq!(json["expectations"][0]["passed"], true);
        let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
        assert!(page.contains("PASSED") && page.trim_end().ends_with("</html>"));
    }
}
