//! Per-frame cost of the compositor: upload of the source + every job's compose + readback,
//! wall clock around `Compositor::compose`, as the frame thread sees it, and the CPU time all
//! threads spent per frame (lavapipe runs on the CPU).
//!
//! `cargo run --release -p edge-compose --example compose_bench [-- FRAMES]`
//!
//! Cases per source size (1280x720, 1920x1080), each with one 400x200 semi-transparent
//! overlay per job: identity + overlay (copy fast path), a 2x zoom (scale path), and 4 jobs
//! per frame (4 render groups sharing one upload). From a 3840x2160 source: full-frame
//! reductions (area average) to 1280x720 and to 640x360, without overlays, and three 720p
//! renderings of the whole frame with different overlays plus one 4x zoom (the three share
//! one reduction).

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
    let reduce = |w, h, overlays| RenderJob {
        output: PlaneLayout::new(w, h).expect("even sizes"),
        roi: Roi::full(layout),
        overlays,
    };
    match case {
        "identity+overlay" => vec![RenderJob::identity(layout, place(101, 63))],
        "2x zoom+overlay" => vec![zoom(place(101, 63))],
        "reduce to 720p" => vec![reduce(1280, 720, vec![])],
        "reduce to 360p" => vec![reduce(640, 360, vec![])],
        "3x720p + 4x zoom" => vec![
            reduce(1280, 720, place(40, 40)),
            reduce(1280, 720, place(600, 300)),
            reduce(1280, 720, vec![]),
            RenderJob {
                output: PlaneLayout::new(1280, 720).expect("even sizes"),
                roi: Roi {
                    x: w * 3.0 / 8.0,
                    y: h * 3.0 / 8.0,
                    width: w / 4.0,
                    height: h / 4.0,
                },
                overlays: place(40, 40),
            },
        ],
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
        "{:<10} {:<18} {:>4} {:>6} {:>9} {:>9} {:>9} {:>13} {:>12}",
        "source",
        "case",
        "jobs",
        "scales",
        "p50 ms",
        "p99 ms",
        "max ms",
        "ms/job (p50)",
        "CPU ms/frame"
    );
    let same_size = ["identity+overlay", "2x zoom+overlay", "4 jobs"];
    let four_k = ["reduce to 720p", "reduce to 360p", "3x720p + 4x zoom"];
    for (width, height, cases) in [
        (1280, 720, &same_size),
        (1920, 1080, &same_size),
        (3840, 2160, &four_k),
    ] {
        let layout = PlaneLayout::new(width, height)?;
        // Two alternating sources so that every frame really uploads new bytes.
        let sources = [source_frame(layout, 0), source_frame(layout, 1)];
        for &case in cases {
            let jobs = jobs(case, layout, overlay);
            let mut samples = LatencySamples::with_capacity(frames);
            let mut max_ms = 0.0f64;
            let mut cpu_started = 0.0;
            for i in 0..WARMUP_FRAMES + frames {
                if i == WARMUP_FRAMES {
                    cpu_started = process_cpu_ms();
                }
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
            let cpu_per_frame = (process_cpu_ms() - cpu_started) / frames as f64;
            let p = samples.percentiles();
            println!(
                "{:<10} {:<18} {:>4} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>13.2} {:>12.1}",
                format!("{width}x{height}"),
                case,
                jobs.len(),
                compositor.last_frame_scales(),
                p.p50,
                p.p99,
                max_ms,
                p.p50 / jobs.len() as f64,
                cpu_per_frame
            );
        }
    }
    Ok(())
}

/// CPU time of this process, all threads (lavapipe's workers included), in ms: what a frame
/// costs the machine, which wall time on a shared machine hides. /proc ticks are 10 ms, so it
/// is read over many frames.
fn process_cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // utime and stime: fields 14 and 15, counted after the parenthesised command name.
    let after_name = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let fields: Vec<f64> = after_name
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    fields.iter().sum::<f64>() * 10.0
}
