//! How long the campaign decisions take, per call, on the embedded default: parsing and
//! validating a file (a reload), resolving a viewer's zone, and a zone's render-key part.
//!
//! `cargo run --release -p edge-campaign --example timings`

use edge_campaign::{Campaigns, Format, MecFix, ZoneInputs, DEFAULT_CAMPAIGNS_TOML};
use std::hint::black_box;
use std::time::Instant;

fn per_call(name: &str, iterations: u32, mut f: impl FnMut()) {
    f(); // warm
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{name:<44} {:>10.0} ns/call", ns);
}

fn main() {
    let yaml = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/production.yaml"),
    )
    .expect("production example is readable");
    per_call("parse+validate default-campaigns.toml", 2_000, || {
        black_box(
            Campaigns::parse(black_box(DEFAULT_CAMPAIGNS_TOML), Format::Toml, "c.toml").is_ok(),
        );
    });
    per_call("parse+validate production.yaml", 2_000, || {
        black_box(Campaigns::parse(black_box(&yaml), Format::Yaml, "c.yaml").is_ok());
    });

    let c = Campaigns::embedded();
    let now = 1_794_326_400;
    let cases = [
        (
            "resolve_zone: lat/lon inside the mall geofence",
            ZoneInputs {
                lat_lon: Some((30.2745, 120.1633)),
                ..ZoneInputs::default()
            },
        ),
        (
            "resolve_zone: lat/lon in Shanghai (default)",
            ZoneInputs {
                lat_lon: Some((31.2304, 121.4737)),
                ..ZoneInputs::default()
            },
        ),
        (
            "resolve_zone: MEC zone id",
            ZoneInputs {
                mec: Some(MecFix {
                    zone_id: Some("zone-yintai-mall".into()),
                    cell_id: None,
                }),
                ..ZoneInputs::default()
            },
        ),
    ];
    for (name, inputs) in &cases {
        per_call(name, 1_000_000, || {
            black_box(c.resolve_zone(black_box(inputs)));
        });
    }
    per_call("active_overlays(yintai-mall)", 1_000_000, || {
        black_box(c.active_overlays(black_box("yintai-mall"), now));
    });
    per_call("render_key_part(yintai-mall)", 1_000_000, || {
        black_box(c.render_key_part(black_box("yintai-mall"), now));
    });
}
