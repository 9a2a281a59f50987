//! The capacity bench as a picture (plain SVG, written beside its JSON): node latency p50/p99
//! against the number of render groups with the budget drawn in, then the crowd runs' viewers
//! served within budget side by side.

use crate::capacity::{CapacityBenchReport, CrowdRun};
use crate::plot::{escape, nice_step};
use std::fmt::Write;

const WIDTH: f64 = 820.0;
const LEFT: f64 = 70.0;
const PLOT_W: f64 = 700.0;
const RAMP_TOP: f64 = 70.0;
const RAMP_H: f64 = 260.0;
const BARS_TOP: f64 = RAMP_TOP + RAMP_H + 90.0;
const BAR_H: f64 = 26.0;
const BAR_GAP: f64 = 14.0;
const LABEL_W: f64 = 230.0;
const P50: &str = "#1f77b4";
const P99: &str = "#d62728";

pub fn capacity_svg(report: &CapacityBenchReport) -> String {
    let c = &report.capacity;
    let runs: Vec<(&str, &CrowdRun)> = [
        Some(("shared groups, admission on", &c.shared_groups)),
        c.shared_groups_all_admitted
            .as_ref()
            .map(|r| ("shared groups, admission off", r)),
        Some((
            "one encoder per viewer, admission on",
            &c.per_viewer_encoders,
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    let height = BARS_TOP + runs.len() as f64 * (BAR_H + BAR_GAP) + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>"#
    );
    let title = format!(
        "edge-node capacity {} @ {} fps ({}, {} kbit/s): max groups within {} ms p99 = {}",
        report.resolution,
        report.fps,
        report.encoder,
        report.bitrate_kbps,
        report.budget_node_latency_p99_ms,
        c.max_groups
    );
    let _ = write!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    ramp_panel(&mut svg, report);
    bars_panel(&mut svg, report, &runs);
    svg.push_str("</svg>\n");
    svg
}

/// Node latency p50 and p99 per ramp step, budget dashed.
fn ramp_panel(svg: &mut String, report: &CapacityBenchReport) {
    let steps = &report.capacity.ramp;
    let budget = report.budget_node_latency_p99_ms;
    let max_ms = steps
        .iter()
        .map(|s| s.window.node_latency_ms.p99)
        .fold(budget, f64::max)
        * 1.1;
    let max_groups = steps.iter().map(|s| s.groups).max().unwrap_or(1).max(1) as f64;
    let x = |groups: f64| LEFT + groups / (max_groups + 0.5) * PLOT_W;
    let y = |ms: f64| RAMP_TOP + RAMP_H - ms / max_ms * RAMP_H;
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}">node latency vs render groups (ramp, admission off)</text>"#,
        RAMP_TOP - 24.0
    );
    for (i, (name, colour)) in [("p50", P50), ("p99", P99)].iter().enumerate() {
        let lx = LEFT + 380.0 + i as f64 * 70.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{colour}"/><text x="{}" y="{}">{name}</text>"#,
            RAMP_TOP - 35.0,
            lx + 16.0,
            RAMP_TOP - 24.0
        );
    }
    let bottom = RAMP_TOP + RAMP_H;
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/><line x1="{LEFT}" y1="{RAMP_TOP}" x2="{LEFT}" y2="{bottom}" stroke="black"/>"#,
        LEFT + PLOT_W
    );
    let step = nice_step(max_ms);
    let mut tick = 0.0;
    while tick <= max_ms {
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{ty:.1}" x2="{LEFT}" y2="{ty:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{tick} ms</text>"##,
            LEFT - 5.0,
            LEFT - 8.0,
            y(tick) + 4.0,
            ty = y(tick)
        );
        tick += step;
    }
    for s in steps {
        let gx = x(s.groups as f64);
        let _ = write!(
            svg,
            r#"<text x="{gx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            bottom + 18.0,
            s.groups
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">render groups (one x264 encoder each)</text>"#,
        LEFT + PLOT_W / 2.0,
        bottom + 38.0
    );
    let by = y(budget);
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{by:.1}" x2="{}" y2="{by:.1}" stroke="#444" stroke-dasharray="5,4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#444">budget: node p99 {budget} ms</text>"##,
        LEFT + PLOT_W,
        LEFT + PLOT_W,
        by - 5.0
    );
    for (colour, value) in [
        (
            P50,
            (|s: &crate::capacity::RampStep| s.window.node_latency_ms.p50) as fn(&_) -> f64,
        ),
        (P99, |s| s.window.node_latency_ms.p99),
    ] {
        let points: Vec<String> = steps
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.groups as f64), y(value(s))))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for s in steps {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#,
                x(s.groups as f64),
                y(value(s))
            );
        }
    }
    for s in steps {
        let p99 = s.window.node_latency_ms.p99;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="{P99}">{p99:.1}</text>"##,
            x(s.groups as f64),
            y(p99) - 8.0
        );
    }
}

/// Viewers served within budget per crowd run, with each run's p99.
fn bars_panel(svg: &mut String, report: &CapacityBenchReport, runs: &[(&str, &CrowdRun)]) {
    let viewers = report.capacity.shared_groups.viewers.max(1) as f64;
    let plot_w = WIDTH - LABEL_W - 20.0;
    let _ = write!(
        svg,
        r#"<text x="10" y="{}">{} viewers: served within budget (bar) and node p99</text>"#,
        BARS_TOP - 16.0,
        report.capacity.shared_groups.viewers
    );
    for (i, (name, run)) in runs.iter().enumerate() {
        let top = BARS_TOP + i as f64 * (BAR_H + BAR_GAP);
        let served = run.viewers_within_budget;
        let w = served as f64 / viewers * plot_w;
        // Light fills so the numbers written over the bar stay readable.
        let colour = if run.window.within_budget {
            "#98df8a"
        } else {
            "#c7c7c7"
        };
        let _ = write!(
            svg,
            r##"<text x="10" y="{:.1}">{}</text><rect x="{LABEL_W}" y="{top:.1}" width="{plot_w:.1}" height="{BAR_H}" fill="#f2f2f2"/><rect x="{LABEL_W}" y="{top:.1}" width="{w:.1}" height="{BAR_H}" fill="{colour}"/><text x="{:.1}" y="{:.1}">{served} of {} · {} groups · p99 {:.1} ms{}</text>"##,
            top + 18.0,
            escape(name),
            LABEL_W + 6.0,
            top + 18.0,
            run.viewers,
            run.window.render_groups,
            run.window.node_latency_ms.p99,
            if run.window.within_budget {
                ""
            } else {
                " OVER"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Capacity, RampStep, Window, WithinBudget};
    use crate::cpu_usage::CpuUse;
    use crate::viewer_swarm::JoinTally;
    use edge_core::stats::Percentiles;
    use std::collections::BTreeMap;

    fn window(p99: f64, groups: u64, within: bool) -> Window {
        Window {
            seconds: 3.0,
            node_latency_ms: Percentiles {
                p50: p99 / 2.0,
                p95: p99 * 0.9,
                p99,
            },
            samples: 90,
            frames_in: 90,
            frames_out: 90 * groups,
            dropped: 0,
            render_groups: groups,
            viewers_receiving: groups as usize,
            within_budget: within,
            cpu: CpuUse::default(),
        }
    }

    fn crowd(within_budget: usize, p99: f64, admission: bool) -> CrowdRun {
        CrowdRun {
            description: "test".into(),
            admission,
            viewers: 200,
            join: JoinTally::default(),
            admission_decisions: BTreeMap::new(),
            viewers_within_budget: within_budget,
            window: window(p99, 4, p99 <= 20.0),
        }
    }

    #[test]
    fn every_step_is_a_point_and_every_run_a_bar() {
        let report = CapacityBenchReport {
            resolution: "1280x720".into(),
            fps: 30,
            budget_node_latency_p99_ms: 20.0,
            adapter: "llvmpipe".into(),
            encoder: "x264enc".into(),
            bitrate_kbps: 500,
            bitrate_note: String::new(),
            viewers_note: String::new(),
            viewer_threads: 1,
            machine_cores: 2,
            rest_of_machine_cores_before: 0.0,
            understanding: None,
            capacity: Capacity {
                max_groups_720p30: Some(2),
                max_groups: 2,
                ramp_admission: false,
                ramp: (1..=4)
                    .map(|g| RampStep {
                        groups: g,
                        viewers: g as usize,
                        attempts: 1,
                        window: window(6.0 * g as f64, g, g <= 2),
                    })
                    .collect(),
                shared_groups: crowd(48, 12.0, true),
                shared_groups_all_admitted: Some(crowd(0, 31.0, false)),
                per_viewer_encoders: crowd(3, 18.0, true),
                viewers_within_budget: WithinBudget {
                    shared_groups: 48,
                    per_viewer_encoders: 3,
                    ratio: Some(16.0),
                    definition: String::new(),
                },
            },
        };
        let svg = capacity_svg(&report);
        assert_eq!(svg.matches("<circle").count(), 8, "p50 and p99 per step");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("budget: node p99 20 ms"));
        assert!(svg.contains("48 of 200"));
        assert!(svg.contains("p99 31.0 ms OVER"));
        assert!(svg.contains("max groups within 20 ms p99 = 2"));
        assert!(svg.ends_with("</svg>\n"));
    }
}
