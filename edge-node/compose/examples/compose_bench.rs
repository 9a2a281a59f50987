//! Per-frame cost of the compositor: upload of the source + every job's compose + readback,
//! wall clock around `Compositor::compose`, as the frame thread sees it.
//!
//! `cargo run --release -p edge-compose --example compose_bench [-- FRAMES]`
//!
//! Cases per source size (1280x720, 1920x1080), each with one 400x200 semi-transparent
//! overlay per job: identity + overlay (copy fast path), a 2x zoom (scale path), and 4 jobs
//! per frame (4 render groups sharing one upload).

use std::time::Instant;

use bytes::Bytes;
use edge_compose::{Compositor, CompositorOptions, OverlayId, OverlayPlacement, RenderJob, Roi};
use edge_core::stats::LatencySamples;
use edge_core::{FrameMeta, I420Frame, PlaneLayout};

const DEFAULT_FRAMES: usize = 300;
const WARMUP_FRAMES: usize = 10;

fn source_frame(layout: PlaneLayout, seq: u64) -> I420Frame {
    let data: Vec<u8> = (0..layout.total_len())
        .map(|i| ((i as u64 * 31 + seq * 7) % 220 + 16) as u8)
        .collect();
    let meta = FrameMeta {
        seq,
        pts_ns: seq * 33_333_333,
        received_unix_us: 0,
    };
    I420Frame::new(layout, Bytes::from(data), meta).expect("sized from the layout")
}

fn overlay_rgba(width: u32, height: u32) -> Vec<u8> {
    (0..width * height)
        .flat_map(|i| {
            let x = i % width;
            [240, 200, 40, (64 + 191 * x / (width - 1)) as u8]
        })
        .collect()
}

fn jobs(case: &str, layout: PlaneLayout, overlay: OverlayId) -> Vec<RenderJob> {
    let place = |x, y| {
        vec![OverlayPlacement {
            overlay,
            x,
            y,
            opacity: 0.85,
        }]
    };
    let (w, h) = (layout.width as f32, layout.height as f32);
    let zoom = |overlays| RenderJob {
        output: layout,
        roi: Roi {
            x: w / 4.0,
            y: h / 4.0,
            width: w / 2.0,
            height: h / 2.0,
        },
        overlays,
    };
    match case {
        "identity+overlay" => vec![RenderJob::identity(layout, place(101, 63))],
        "2x zoom+overlay" => vec![zoom(place(101, 63))],
        _ => vec![
            RenderJob::identity(layout, place(101, 63)),
            RenderJob::identity(layout, place(layout.width as i32 - 450, 400)),
            zoom(place(40, 40)),
            RenderJob {
                output: PlaneLayout::new(layout.width / 2, layout.height / 2)
                    .expect("half of an even size divisible by 4 is even"),
                roi: Roi::full(layout),
                overlays: place(10, 10),
            },
        ],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("edge-compose-bench-runtime");
        std::fs::create_dir_all(&dir)?;
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "edge_compose=info".into()),
        )
        .init();
    let frames: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => DEFAULT_FRAMES,
    };

    let started = Instant::now();
    let mut compositor = Compositor::new(CompositorOptions::default())?;
    let adapter = compositor.adapter().clone();
    println!(
        "adapter: {} ({:?}, {:?}, software: {}), ready in {:.1} ms",
        adapter.name,
        adapter.backend,
        adapter.device_type,
        adapter.is_software,
        started.elapsed().as_secs_f64() * 1e3
    );
    let overlay = compositor.load_overlay_rgba(400, 200, &overlay_rgba(400, 200))?;

    println!(
        "{:<10} {:<18} {:>4} {:>9} {:>9} {:>9} {:>13}",
        "source", "case", "jobs", "p50 ms", "p99 ms", "max ms", "ms/job (p50)"
    );
    for (width, height) in [(1280, 720), (1920, 1080)] {
        let layout = PlaneLayout::new(width, height)?;
        // Two alternating sources so that every frame really uploads new bytes.
        let sources = [source_frame(layout, 0), source_frame(layout, 1)];
        for case in ["identity+overlay", "2x zoom+overlay", "4 jobs"] {
            let jobs = jobs(case, layout, overlay);
            let mut samples = LatencySamples::with_capacity(frames);
            let mut max_ms = 0.0f64;
            for i in 0..WARMUP_FRAMES + frames {
                let source = &sources[i % 2];
                let t = Instant::now();
                let out = compositor.compose(source, &jobs)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                std::hint::black_box(out);
                if i >= WARMUP_FRAMES {
                    samples.record_ms(ms);
                    max_ms = max_ms.max(ms);
                }
            }
            let p = samples.percentiles();
            println!(
                "{:<10} {:<18} {:>4} {:>9.2} {:>9.2} {:>9.2} {:>13.2}",
                format!("{width}x{height}"),
                case,
                jobs.len(),
                p.p50,
                p.p99,
                max_ms,
                p.p50 / jobs.len() as f64
            );
        }
    }
    Ok(())
}
