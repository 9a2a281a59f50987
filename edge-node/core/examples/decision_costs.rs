//! How long the per-frame and per-request decisions of edge-core take, so their share of the
//! frame budget is known: `cargo run --release -p edge-core --example decision_costs`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use edge_core::admission::{Admission, CostPriors, GroupLoad, Rendition, Request, DEFAULT_BUDGET};
use edge_core::geometry::Rect;
use edge_core::groups::{GroupId, GroupTable, ViewerId};
use edge_core::placement::Anchor;
use edge_core::smoothing::{PlacementSmoother, SmoothingConfig};
use edge_core::taps::TapTracker;
use edge_core::zoom::{Face, FaceFollower, FollowConfig, RoiGeometry};

/// Runs `f` `n` times and prints the mean time per call.
fn time(name: &str, n: u32, mut f: impl FnMut(u32)) {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    let per_call = start.elapsed() / n;
    println!("{name:<58} {:>9.3} µs", per_call.as_secs_f64() * 1e6);
}

fn main() {
    const FRAME: Duration = Duration::from_micros(33_333);
    let p720 = Rendition::new(1280, 720);

    let mut table = GroupTable::new(Duration::from_secs(5));
    for v in 0..200u64 {
        table
            .join(ViewerId(v), v % 4)
            .expect("each viewer joins once");
    }
    time(
        "groups: request_key + on_keyframe (200 viewers, 4 groups)",
        20_000,
        |i| {
            let v = ViewerId(u64::from(i % 200));
            let key = u64::from(i % 7);
            if let Ok(edge_core::groups::KeyChange::Pending { to, .. }) =
                table.request_key(v, key, FRAME * i)
            {
                black_box(table.on_keyframe(to, FRAME * i));
            }
            black_box(table.expire(FRAME * i));
        },
    );

    let admission = Admission::new(
        DEFAULT_BUDGET,
        2,
        &[p720, Rendition::new(854, 480)],
        CostPriors::default(),
    )
    .expect("valid settings");
    let load: Vec<GroupLoad> = (0..16)
        .map(|g| GroupLoad {
            group: GroupId(g),
            pixels: p720.pixels(),
            viewers: 12,
        })
        .collect();
    time(
        "admission: decide (16 live groups, personal request)",
        20_000,
        |_| {
            let request = Request {
                rendition: p720,
                personal: true,
            };
            black_box(admission.decide(black_box(&load), request, |_, _| Some(GroupId(3)), None));
        },
    );

    let mut smoother = PlacementSmoother::new(
        SmoothingConfig::default(),
        (320, 120),
        (1280, 720),
        &PlacementSmoother::all_anchors(Anchor::BottomRight, (24, 24)),
    )
    .expect("valid settings");
    time(
        "smoothing: observe 3 boxes + step (9 candidates)",
        20_000,
        |i| {
            let wobble = (i % 5) as i32;
            let boxes = [
                Rect::new(900 + wobble, 500, 200, 200),
                Rect::new(100, 80 + wobble, 180, 200),
                Rect::new(600, 300, 120, 40),
            ];
            smoother.observe(&boxes, FRAME * i);
            black_box(smoother.step(FRAME * i));
        },
    );

    let geometry = RoiGeometry::new((3840, 2160), (1280, 720), 4.0).expect("valid sizes");
    let mut follower =
        FaceFollower::new(geometry, FollowConfig::default()).expect("valid settings");
    time("zoom: face follower observe + step", 20_000, |i| {
        let face = Face {
            rect: Rect::new(1800 + (i % 40) as i32, 700, 200, 240),
            score: 0.9,
        };
        follower.observe(&[face], FRAME * i);
        black_box(follower.step(FRAME * i));
    });

    let mut taps = TapTracker::new(Duration::from_secs(5));
    let placed = [
        ("ad", Rect::new(24, 24, 400, 200)),
        ("card", Rect::new(856, 576, 400, 120)),
    ];
    time("taps: tap + expire", 20_000, |i| {
        black_box(taps.tap(ViewerId(u64::from(i % 200)), 900, 600, &placed, FRAME * i));
        black_box(taps.expire(FRAME * i));
    });
}
