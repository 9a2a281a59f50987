//! The capacity bench as a picture (plain SVG, written beside its JSON): node latency and the
//! viewers' edge-to-viewer latency against the number of renderings with the budget drawn in,
//! the CPU the node and ffmpeg per zone take per number of renderings, the renderings each
//! kept side by side, then the crowd runs' viewers served within budget.

use crate::capacity::{CapacityBenchReport, CrowdRun};
use crate::plot::{escape, nice_step};
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::Path;

const WIDTH: f64 = 820.0;
const LEFT: f64 = 70.0;
const PLOT_W: f64 = 700.0;
const RAMP_TOP: f64 = 70.0;
const RAMP_H: f64 = 260.0;
const CPU_TOP: f64 = RAMP_TOP + RAMP_H + 90.0;
const CPU_H: f64 = 200.0;
const KEPT_TOP: f64 = CPU_TOP + CPU_H + 90.0;
const BAR_H: f64 = 26.0;
const BAR_GAP: f64 = 14.0;
const LABEL_W: f64 = 230.0;
const P50: &str = "#1f77b4";
const P99: &str = "#d62728";
const EDGE: &str = "#9467bd";
const NODE: &str = "#2ca02c";
const FFMPEG: &str = "#ff7f0e";
const FLOOR: &str = "#7f7f7f";

/// One line of a panel: name, colour, (x, y) points.
struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
    /// Write each point's value above it.
    labelled: bool,
}

/// A horizontal reference line of a panel.
struct Reference {
    value: f64,
    label: String,
}

struct Panel<'a> {
    top: f64,
    height: f64,
    title: &'a str,
    x_label: &'a str,
    unit: &'a str,
    series: Vec<Series<'a>>,
    reference: Option<Reference>,
    /// Text under given x positions (e.g. "behind").
    x_notes: Vec<(f64, String)>,
}

/// Writes the report as JSON at `path` and its chart beside it (same name, `.svg`).
pub fn write_report(report: &CapacityBenchReport, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    let svg_path = path.with_extension("svg");
    std::fs::write(&svg_path, capacity_svg(report))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    Ok(())
}

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
    let kept = kept_rows(report);
    let crowd_top = KEPT_TOP + kept.len() as f64 * (BAR_H + BAR_GAP) + 60.0;
    let height = crowd_top + runs.len() as f64 * (BAR_H + BAR_GAP) + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>"#
    );
    let title = format!(
        "edge-node capacity {} @ {} fps ({}, {} kbit/s, GOP {}): {} renderings within {} ms, {} in real time",
        report.resolution,
        report.fps,
        report.encoder,
        report.bitrate_kbps,
        report.gop_frames,
        c.max_groups,
        report.budget_node_latency_p99_ms,
        c.max_groups_real_time
    );
    let _ = write!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    line_panel(&mut svg, &latency_panel(report));
    line_panel(&mut svg, &cpu_panel(report));
    bars(
        &mut svg,
        KEPT_TOP,
        "renderings kept, same file and cores",
        &kept,
        kept.iter().map(|r| r.value).fold(1.0, f64::max),
    );
    let crowd_rows: Vec<BarRow> = runs
        .iter()
        .map(|(name, run)| BarRow {
            label: name.to_string(),
            value: run.viewers_within_budget as f64,
            colour: if run.window.within_budget {
                "#98df8a"
            } else {
                "#c7c7c7"
            },
            text: format!(
                "{} of {} · {} groups · node p99 {:.1} ms · worst viewer p99 {:.1} ms{}",
                run.viewers_within_budget,
                run.viewers,
                run.window.render_groups,
                run.window.node_latency_ms.p99,
                run.window.edge_to_viewer.worst_viewer_p99_ms,
                if run.window.within_budget {
                    ""
                } else {
                    " OVER"
                }
            ),
        })
        .collect();
    bars(
        &mut svg,
        crowd_top,
        &format!(
            "{} viewers: served within budget (bar), node and worst viewer p99",
            c.shared_groups.viewers
        ),
        &crowd_rows,
        c.shared_groups.viewers.max(1) as f64,
    );
    svg.push_str("</svg>\n");
    svg
}

fn latency_panel(report: &CapacityBenchReport) -> Panel<'static> {
    let steps = &report.capacity.ramp;
    let at = |f: fn(&crate::capacity::RampStep) -> f64| -> Vec<(f64, f64)> {
        steps.iter().map(|s| (s.groups as f64, f(s))).collect()
    };
    Panel {
        top: RAMP_TOP,
        height: RAMP_H,
        title: "node latency and the viewers' edge-to-viewer latency vs renderings (admission off)",
        x_label: "renderings (render groups, one x264 encoder each)",
        unit: "ms",
        series: vec![
            Series {
                name: "node p50",
                colour: P50,
                points: at(|s| s.window.node_latency_ms.p50),
                labelled: false,
            },
            Series {
                name: "node p99",
                colour: P99,
                points: at(|s| s.window.node_latency_ms.p99),
                labelled: true,
            },
            Series {
                name: "worst viewer p99",
                colour: EDGE,
                points: at(|s| s.window.edge_to_viewer.worst_viewer_p99_ms),
                labelled: false,
            },
            // The machine's share of the frame's work: latency cannot stay much below it.
            Series {
                name: "CPU floor",
                colour: FLOOR,
                points: at(|s| s.window.cpu_floor_ms),
                labelled: false,
            },
        ],
        reference: Some(Reference {
            value: report.budget_node_latency_p99_ms,
            label: format!("budget: p99 {} ms", report.budget_node_latency_p99_ms),
        }),
        x_notes: steps
            .iter()
            .filter(|s| !s.window.real_time)
            .map(|s| (s.groups as f64, "behind".to_string()))
            .collect(),
    }
}

fn cpu_panel(report: &CapacityBenchReport) -> Panel<'static> {
    let c = &report.capacity;
    let mut series = vec![Series {
        name: "node",
        colour: NODE,
        points: c
            .ramp
            .iter()
            .map(|s| (s.groups as f64, s.window.cpu.other_cores))
            .collect(),
        labelled: false,
    }];
    let mut x_notes = Vec::new();
    if let Some(f) = &c.ffmpeg_per_zone {
        series.push(Series {
            name: "ffmpeg per zone",
            colour: FFMPEG,
            points: f
                .steps
                .iter()
                .map(|s| (s.processes as f64, s.ffmpeg_cores))
                .collect(),
            labelled: false,
        });
        x_notes.extend(
            f.steps
                .iter()
                .filter(|s| !s.real_time)
                .map(|s| (s.processes as f64, "ffmpeg behind".to_string())),
        );
    }
    Panel {
        top: CPU_TOP,
        height: CPU_H,
        title: "CPU used vs renderings (node: its threads; ffmpeg: all processes)",
        x_label: "renderings (node render groups / ffmpeg processes)",
        unit: "cores",
        series,
        reference: Some(Reference {
            value: report.machine_cores as f64,
            label: format!("machine: {} cores", report.machine_cores),
        }),
        x_notes,
    }
}

fn line_panel(svg: &mut String, panel: &Panel) {
    let all = || panel.series.iter().flat_map(|s| s.points.iter());
    let max_y = all()
        .map(|p| p.1)
        .chain(panel.reference.as_ref().map(|r| r.value))
        .fold(1e-3, f64::max)
        * 1.1;
    let max_x = all().map(|p| p.0).fold(1.0, f64::max);
    let (top, h) = (panel.top, panel.height);
    let x = |v: f64| LEFT + v / (max_x + 0.5) * PLOT_W;
    let y = |v: f64| top + h - v / max_y * h;
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="{}">{}</text>"#,
        top - 24.0,
        escape(panel.title)
    );
    let mut lx = LEFT + 300.0;
    for s in &panel.series {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            top - 14.0,
            s.colour,
            lx + 16.0,
            top - 3.0,
            escape(s.name)
        );
        lx += 24.0 + 7.5 * s.name.len() as f64;
    }
    let bottom = top + h;
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="black"/>"#,
        LEFT + PLOT_W
    );
    let step = nice_step(max_y);
    let mut tick = 0.0;
    while tick <= max_y {
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{ty:.1}" x2="{LEFT}" y2="{ty:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{} {}</text>"##,
            LEFT - 5.0,
            LEFT - 8.0,
            y(tick) + 4.0,
            (tick * 1e6).round() / 1e6,
            panel.unit,
            ty = y(tick)
        );
        tick += step;
    }
    // Every count while they fit, round steps beyond.
    let x_step = if max_x <= 25.0 {
        1.0
    } else {
        nice_step(max_x).max(1.0)
    };
    let mut xt = x_step;
    while xt <= max_x {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{xt}</text>"#,
            x(xt),
            bottom + 18.0
        );
        xt += x_step;
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + PLOT_W / 2.0,
        bottom + 52.0,
        escape(panel.x_label)
    );
    for (at, note) in &panel.x_notes {
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="10" fill="#a00">{}</text>"##,
            x(*at),
            bottom + 32.0,
            escape(note)
        );
    }
    if let Some(r) = &panel.reference {
        let ry = y(r.value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{ry:.1}" x2="{}" y2="{ry:.1}" stroke="#444" stroke-dasharray="5,4"/><text x="{}" y="{:.1}" text-anchor="end" fill="#444">{}</text>"##,
            LEFT + PLOT_W,
            LEFT + PLOT_W,
            ry - 5.0,
            escape(&r.label)
        );
    }
    for s in &panel.series {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            points.join(" "),
            s.colour
        );
        for (px, py) in &s.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                x(*px),
                y(*py),
                s.colour
            );
            if s.labelled {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="{}">{py:.1}</text>"#,
                    x(*px),
                    y(*py) - 8.0,
                    s.colour
                );
            }
        }
    }
}

struct BarRow {
    label: String,
    value: f64,
    colour: &'static str,
    text: String,
}

/// The renderings each side kept, with the CPU it took.
fn kept_rows(report: &CapacityBenchReport) -> Vec<BarRow> {
    let c = &report.capacity;
    let sbs = &c.side_by_side;
    let cores = |v: Option<f64>| v.map_or_else(String::new, |v| format!(" · {v:.2} cores"));
    let mut rows = vec![
        BarRow {
            label: "node, within budget".into(),
            value: sbs.node_renderings_within_budget as f64,
            colour: NODE,
            text: format!(
                "{}{}",
                sbs.node_renderings_within_budget,
                sbs.ratio_within_budget
                    .map_or_else(String::new, |r| format!(" · {r:.2}x ffmpeg"))
            ),
        },
        BarRow {
            label: "node, in real time".into(),
            value: sbs.node_renderings_real_time as f64,
            colour: NODE,
            text: format!(
                "{}{}{}",
                sbs.node_renderings_real_time,
                cores(sbs.node_cores_at_real_time_max),
                sbs.ratio_real_time
                    .map_or_else(String::new, |r| format!(" · {r:.2}x ffmpeg"))
            ),
        },
    ];
    if let Some(n) = sbs.ffmpeg_renderings_real_time {
        rows.push(BarRow {
            label: "ffmpeg per zone, in real time".into(),
            value: n as f64,
            colour: FFMPEG,
            text: format!("{n}{}", cores(sbs.ffmpeg_cores_at_real_time_max)),
        });
    }
    rows
}

fn bars(svg: &mut String, top: f64, title: &str, rows: &[BarRow], full: f64) {
    let plot_w = WIDTH - LABEL_W - 20.0;
    let _ = write!(
        svg,
        r#"<text x="10" y="{}">{}</text>"#,
        top - 16.0,
        escape(title)
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as f64 * (BAR_H + BAR_GAP);
        let w = (row.value / full.max(1e-9)).clamp(0.0, 1.0) * plot_w;
        // Light background and the number over the bar, readable whatever its length.
        let _ = write!(
            svg,
            r##"<text x="10" y="{:.1}">{}</text><rect x="{LABEL_W}" y="{y:.1}" width="{plot_w:.1}" height="{BAR_H}" fill="#f2f2f2"/><rect x="{LABEL_W}" y="{y:.1}" width="{w:.1}" height="{BAR_H}" fill="{}" fill-opacity="0.6"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            y + 18.0,
            escape(&row.label),
            row.colour,
            LABEL_W + 6.0,
            y + 18.0,
            escape(&row.text)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Capacity, RampStep, SideBySide, Window, WithinBudget};
    use crate::capacity_ffmpeg::{FfmpegComparison, FfmpegStep};
    use crate::capacity_upstream::UpstreamFile;
    use crate::viewer_swarm::{EdgeToViewer, JoinTally};
    use edge_core::stats::Percentiles;
    use edge_telemetry::cpu_usage::CpuUse;
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
            source_share: 1.0,
            frames_out: 90 * groups,
            dropped: 0,
            render_groups: groups,
            viewers_receiving: groups as usize,
            viewers_real_time: groups as usize,
            viewers_watching: groups as usize,
            viewer_frames_min: 90,
            real_time: groups <= 3,
            edge_to_viewer: EdgeToViewer {
                worst_viewer_p99_ms: p99 + 1.0,
                ..EdgeToViewer::default()
            },
            node_within_budget: within,
            within_budget: within,
            cpu: CpuUse {
                other_cores: 0.3 * groups as f64,
                ..CpuUse::default()
            },
            cpu_floor_ms: 2.0 * groups as f64,
            machine_stall_ms: 1.0,
            machine_stalled: false,
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
            attempts: 1,
            window: window(p99, 4, p99 <= 20.0),
        }
    }

    fn ffmpeg_step(processes: usize, real_time: bool) -> FfmpegStep {
        FfmpegStep {
            processes,
            attempts: 1,
            real_time,
            worst_wall_over_media: if real_time { 1.01 } else { 1.2 },
            ffmpeg_cores: 0.15 * processes as f64,
            cpu_ms_per_frame: 5.0,
            rest_of_machine_cores: 0.0,
            runs: Vec::new(),
        }
    }

    #[test]
    fn every_step_is_a_point_and_every_count_a_bar() {
        let report = CapacityBenchReport {
            resolution: "1280x720".into(),
            fps: 30,
            budget_node_latency_p99_ms: 20.0,
            adapter: "llvmpipe".into(),
            encoder: "x264enc".into(),
            bitrate_kbps: 500,
            gop_frames: 30,
            upstream: UpstreamFile {
                path: "/tmp/upstream.mp4".into(),
                width: 1280,
                height: 720,
                fps: 30,
                seconds: 20.0,
                origin: "test".into(),
            },
            bitrate_note: String::new(),
            viewers_note: String::new(),
            viewer_threads: 1,
            machine_cores: 2,
            rest_of_machine_cores_before: 0.0,
            understanding: None,
            realtime_priority_asked: true,
            realtime_priority_permitted: true,
            capacity: Capacity {
                max_groups_720p30: Some(2),
                max_groups: 2,
                max_groups_real_time: 3,
                ramp_admission: false,
                ramp: (1..=4)
                    .map(|g| RampStep {
                        groups: g,
                        viewers: g as usize,
                        attempts: 1,
                        window: window(6.0 * g as f64, g, g <= 2),
                    })
                    .collect(),
                ffmpeg_per_zone: Some(FfmpegComparison {
                    command: "ffmpeg ...".into(),
                    ffmpeg_version: "ffmpeg version 5.1".into(),
                    definition: String::new(),
                    max_real_time: 5,
                    steps: (1..=6).map(|n| ffmpeg_step(n, n <= 5)).collect(),
                }),
                side_by_side: SideBySide {
                    node_renderings_within_budget: 2,
                    node_renderings_real_time: 3,
                    ffmpeg_renderings_real_time: Some(5),
                    ratio_within_budget: Some(0.4),
                    ratio_real_time: Some(0.6),
                    node_cores_at_real_time_max: Some(0.9),
                    node_cpu_ms_per_rendering_frame: Some(10.0),
                    ffmpeg_cores_at_real_time_max: Some(0.75),
                    ffmpeg_cpu_ms_per_frame: Some(5.0),
                    definition: String::new(),
                },
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
        assert_eq!(
            svg.matches("<circle").count(),
            4 * 4 + 4 + 6,
            "four latency series per step, node and ffmpeg CPU per step"
        );
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert!(svg.contains("budget: p99 20 ms"));
        assert!(svg.contains("machine: 2 cores"));
        assert_eq!(
            svg.matches(">behind<").count(),
            1,
            "the step that lost real time"
        );
        assert_eq!(svg.matches(">ffmpeg behind<").count(), 1);
        assert!(svg.contains(">3 · 0.90 cores · 0.60x ffmpeg<"));
        assert!(svg.contains(">5 · 0.75 cores<"));
        assert!(svg.contains("48 of 200"));
        assert!(svg.contains("node p99 31.0 ms · worst viewer p99 32.0 ms OVER"));
        assert!(svg.contains("2 renderings within 20 ms, 3 in real time"));
        assert!(svg.ends_with("</svg>\n"));

        let mut without_ffmpeg = report;
        without_ffmpeg.capacity.ffmpeg_per_zone = None;
        without_ffmpeg
            .capacity
            .side_by_side
            .ffmpeg_renderings_real_time = None;
        let svg = capacity_svg(&without_ffmpeg);
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(!svg.contains("ffmpeg per zone, in real time"));
    }
}
