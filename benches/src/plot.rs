//! A bench report as a picture: horizontal bars of p50/p95/p99 per row, in plain SVG (no
//! dependencies), written next to the bench JSON so CI artifacts can be looked at, not read.

use edge_core::stats::Percentiles;
use std::fmt::Write;

const ROW_H: f64 = 34.0;
const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 560.0;
const TOP: f64 = 56.0;
const SHADES: [(&str, &str); 3] = [("p50", "#1f77b4"), ("p95", "#ff9f1c"), ("p99", "#d62728")];

/// `rows` are (label, percentiles in ms); `budget_ms` draws a dashed line (e.g. the p99 target).
pub fn latency_bars_svg(
    title: &str,
    rows: &[(String, Percentiles)],
    budget_ms: Option<f64>,
) -> String {
    let max_ms = rows
        .iter()
        .map(|(_, p)| p.p99)
        .chain(budget_ms)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let scale = PLOT_W / max_ms;
    let height = TOP + ROW_H * rows.len() as f64 + 50.0;
    let width = LABEL_W + PLOT_W + 40.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(title)
    );
    for (i, (name, colour)) in SHADES.iter().enumerate() {
        let x = LABEL_W + i as f64 * 70.0;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{colour}"/><text x="{}" y="43">{name}</text>"#,
            x + 16.0
        );
    }
    for (i, (label, p)) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        let _ = write!(
            svg,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 19.0,
            escape(label)
        );
        // Widest first so the shorter percentiles stay visible on top.
        for ((_, colour), value) in SHADES.iter().rev().zip([p.p99, p.p95, p.p50]) {
            let _ = write!(
                svg,
                r#"<rect x="{LABEL_W}" y="{}" width="{:.1}" height="{}" fill="{colour}"/>"#,
                y + 4.0,
                value * scale,
                ROW_H - 10.0
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" fill="#333">{:.2} / {:.2} / {:.2} ms</text>"##,
            LABEL_W + p.p99 * scale + 6.0,
            y + 19.0,
            p.p50,
            p.p95,
            p.p99
        );
    }
    let axis_y = TOP + ROW_H * rows.len() as f64 + 6.0;
    let _ = write!(
        svg,
        r#"<line x1="{LABEL_W}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        LABEL_W + PLOT_W
    );
    let step = nice_step(max_ms);
    let mut tick = 0.0;
    while tick <= max_ms {
        let x = LABEL_W + tick * scale;
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{axis_y}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{tick} ms</text>"#,
            axis_y + 5.0,
            axis_y + 20.0
        );
        tick += step;
    }
    if let Some(budget) = budget_ms {
        let x = LABEL_W + budget * scale;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{axis_y}" stroke="#444" stroke-dasharray="5,4"/><text x="{x:.1}" y="{}" text-anchor="middle" fill="#444">node p99 target {budget} ms</text>"##,
            TOP - 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A tick step of 1, 2 or 5 times a power of ten giving about five ticks.
pub(crate) fn nice_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(magnitude * 10.0)
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_group_per_row_and_a_budget_line() {
        let p = Percentiles {
            p50: 2.0,
            p95: 3.0,
            p99: 4.0,
        };
        let svg = latency_bars_svg(
            "720p <30>",
            &[("compose".into(), p), ("encode".into(), p)],
            Some(10.0),
        );
        assert_eq!(
            svg.matches("height=\"24\"").count(),
            6,
            "three bars per row"
        );
        assert!(svg.contains("node p99 target 10 ms") && svg.contains("720p &lt;30&gt;"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(11.0), 5.0);
        assert_eq!(nice_step(4.4), 1.0);
        assert_eq!(nice_step(0.9), 0.2);
    }
}
