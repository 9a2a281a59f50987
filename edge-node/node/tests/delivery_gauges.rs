//! The delivery gauges follow the viewers down: while viewers in two zones watch, `/metrics`
//! counts them and their renderings; once they have left, `edge_viewers`, `edge_render_groups`
//! and the budget utilisation are back at zero (renderings after their grace period), and the
//! feed write failures are exported by reason, whether or not any happened.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Why a write into a viewer's feed failed, as `edge_feed_write_failures_total` labels them.
const FAILURE_REASONS: [&str; 5] = ["closed", "too_large", "expired", "bad_timestamp", "other"];

#[test]
fn gauges_return_to_zero_when_viewers_leave() {
    let config = "[upstream]\nuri = \"testshow://?width=320&height=180&fps=30\"\n\
                  [understanding]\nenabled = false\n[budget]\ngroup_grace_ms = 1000\n";
    let path = write_node_config("gauges", config);
    let mut cmd = node_command();
    cmd.args(["serve", "--config", path.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let node = spawn_serving(cmd);
    let url = node.url("").to_string();
    let viewers: Vec<Proc> = ["yintai-mall", "yintai-mall", "default"]
        .iter()
        .map(|zone| {
            let mut cmd = node_command();
            cmd.args(["view", &url, "--zone", zone, "--duration", "4"]);
            Proc::spawn("viewer", cmd)
        })
        .collect();
    wait_until(
        Duration::from_secs(30),
        "three viewers in two renderings",
        || {
            node.metric("edge_viewers") == Some(3.0)
                && node.metric("edge_render_groups") == Some(2.0)
        },
    );
    let exposition = node.admin_get("/metrics");
    for reason in FAILURE_REASONS {
        let series = format!("edge_feed_write_failures_total{{reason=\"{reason}\"}}");
        assert!(
            metric_value(&exposition, &series).is_some(),
            "{series} in /metrics:\n{exposition}"
        );
    }

    for mut viewer in viewers {
        let status = viewer.wait_exit(Duration::from_secs(30));
        assert!(status.success(), "{}", viewer.log_text());
    }
    let left = Instant::now();
    let gauges = [
        "edge_viewers",
        "edge_render_groups",
        "edge_budget_utilization_ratio",
    ];
    let readings =
        || -> Vec<(&str, Option<f64>)> { gauges.iter().map(|g| (*g, node.metric(g))).collect() };
    let deadline = Instant::now() + Duration::from_secs(15);
    while readings().iter().any(|(_, v)| *v != Some(0.0)) {
        assert!(
            Instant::now() < deadline,
            "every delivery gauge back at zero 15 s after the viewers left: {:?}",
            readings()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failures: f64 = FAILURE_REASONS
        .iter()
        .filter_map(|r| node.metric(&format!("edge_feed_write_failures_total{{reason=\"{r}\"}}")))
        .sum();
    eprintln!(
        "gauges at zero {} ms after the last viewer left; feed write failures: {failures}",
        left.elapsed().as_millis()
    );
}
