//! `edge-bench` (also run as `edge-node bench`): the node's latency against the bare
//! decode→encode floor, and its capacity (render-group ramp, ffmpeg per zone on the same
//! upstream, a crowd of viewers) with plots. A binary of its own so none of this ships in the
//! production `edge-node`.

mod bench;
mod capacity;
mod capacity_ffmpeg;
mod capacity_plot;
mod capacity_upstream;
mod file_bench;
mod machine_stall;
mod plot;
mod viewer_swarm;

use anyhow::{bail, Context, Result};
use clap::Parser;
use edge_node::cli::{init_tracing, runtime, seconds, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Latency or capacity of the node on this machine, against baselines measured in the same run.
#[derive(Parser)]
#[command(name = "edge-bench", version, about, long_about = None)]
struct BenchArgs {
    /// Log format: human-readable text or one JSON object per line. Filter with RUST_LOG.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Test-show resolution, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    resolution: String,
    /// Test-show frame rate.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds measured (after the warm-up), for the pipeline and again for the floor.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of warm-up excluded from the numbers.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measure capacity instead of latency: the render-group ramp (admission off) until real
    /// time is lost, ffmpeg per zone on the same upstream file until one falls behind, then
    /// --viewers viewers over 4 shared groups against the same viewers with one encoder each.
    #[arg(long)]
    capacity: bool,
    /// The upstream file (its size and rate replace --resolution and --fps). Latency: the
    /// node's upstream, looped, watched by one full-frame 720p viewer and one zoomed 720p
    /// viewer (--zoom-viewer), beside a decode-only pass over the same file; the zoomed
    /// picture is compared with the ideal crop of its source frame (SSIM). Capacity: every run
    /// reads it; without it the bench writes one from the test show.
    #[arg(long)]
    upstream_file: Option<PathBuf>,
    /// With --upstream-file (latency): the zoomed viewer's region, X,Y,W,H in fractions of the
    /// frame (the default is the centre at 4x: a native crop of a 4K source for 720p).
    #[arg(long, default_value = "0.375,0.375,0.25,0.25")]
    zoom_viewer: String,
    /// Capacity: seconds of the test show written as the upstream file (the node loops it).
    #[arg(long, default_value_t = 20.0)]
    upstream_seconds: f64,
    /// Capacity: media seconds each ffmpeg process encodes per step of its ramp.
    #[arg(long, default_value_t = 8.0)]
    ffmpeg_seconds: f64,
    /// Capacity: the ffmpeg ramp stops at this many processes even in real time.
    #[arg(long, default_value_t = 48)]
    ffmpeg_max: usize,
    /// Capacity: skip the ffmpeg-per-zone comparison.
    #[arg(long)]
    no_ffmpeg: bool,
    /// Capacity: viewers in the shared and one-encoder-per-viewer runs.
    #[arg(long, default_value_t = 200)]
    viewers: usize,
    /// Capacity: encoder bitrate of every group (the viewers receive on the same cores).
    #[arg(long, default_value_t = 500)]
    bitrate_kbps: u32,
    /// Capacity: seconds measured per ramp step.
    #[arg(long, default_value_t = 5.0)]
    step: f64,
    /// Capacity: seconds measured per crowd run.
    #[arg(long, default_value_t = 6.0)]
    crowd_duration: f64,
    /// Capacity: seconds between joins and each measurement (group start, IDRs).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Capacity: the ramp stops at this many groups even in real time.
    #[arg(long, default_value_t = 24)]
    max_groups: usize,
    /// Capacity: worker threads of the in-process viewers [default: one per core]. They stand
    /// in for phones that each receive on their own CPU: on a single thread a crowd's viewers
    /// would read each frame one after another, and the last would count that queue as latency.
    #[arg(long)]
    viewer_threads: Option<usize>,
    /// Capacity and --upstream-file: turn content understanding off in every run (it shares
    /// the cores).
    #[arg(long)]
    no_understanding: bool,
    /// Capacity: the node's frame path and encoders at real-time priority
    /// (`encode.realtime_priority = true`) instead of the embedded config's normal scheduler,
    /// for an A/B in one hour.
    #[arg(long)]
    realtime_priority: bool,
}

/// The node's own allocator (see `edge-node`'s main.rs), so the bench measures what it runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    init_tracing(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: BenchArgs) -> Result<()> {
    let (w, h) = args
        .resolution
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|(w, h)| *w >= 16 && *h >= 16 && w % 2 == 0 && h % 2 == 0)
        .with_context(|| {
            format!(
                "--resolution must be WIDTHxHEIGHT with even sides >= 16, got {:?}",
                args.resolution
            )
        })?;
    if !(1..=120).contains(&args.fps) {
        bail!("--fps must be 1..=120");
    }
    if args.capacity {
        if args.viewers == 0
            || args.max_groups == 0
            || args.bitrate_kbps == 0
            || args.ffmpeg_max == 0
        {
            bail!("--viewers, --max-groups, --bitrate-kbps and --ffmpeg-max must be at least 1");
        }
        let upstream_seconds = seconds(args.upstream_seconds, "--upstream-seconds")?;
        let ffmpeg_seconds = seconds(args.ffmpeg_seconds, "--ffmpeg-seconds")?;
        if upstream_seconds < Duration::from_secs(1) || ffmpeg_seconds < Duration::from_secs(1) {
            bail!("--upstream-seconds and --ffmpeg-seconds must be at least 1");
        }
        let upstream = match args.upstream_file {
            Some(path) => capacity::UpstreamChoice::File(path),
            None => capacity::UpstreamChoice::TestShow {
                seconds: upstream_seconds.as_secs_f64(),
            },
        };
        let options = capacity::CapacityOptions {
            width: w,
            height: h,
            fps: args.fps,
            upstream,
            ffmpeg_seconds: (!args.no_ffmpeg).then_some(ffmpeg_seconds.as_secs_f64()),
            ffmpeg_max: args.ffmpeg_max,
            bitrate_kbps: args.bitrate_kbps,
            viewers: args.viewers,
            step: seconds(args.step, "--step")?,
            crowd: seconds(args.crowd_duration, "--crowd-duration")?,
            settle: seconds(args.settle, "--settle")?,
            max_groups: args.max_groups,
            viewer_threads: args
                .viewer_threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1),
            understanding: !args.no_understanding,
            realtime_priority: args.realtime_priority,
        };
        let report = runtime()?.block_on(capacity::run(options))?;
        if let Some(path) = &args.json {
            capacity_plot::write_report(&report, path)?;
        }
        println!("{}", capacity::render(&report));
        return Ok(());
    }
    if let Some(upstream) = args.upstream_file {
        let options = file_bench::FileBenchOptions {
            upstream,
            zoom: file_bench::parse_zoom(&args.zoom_viewer)?,
            duration: seconds(args.duration, "--duration")?,
            warmup: seconds(args.warmup, "--warmup")?,
            understanding: !args.no_understanding,
            json: args.json,
        };
        let report = runtime()?.block_on(file_bench::run(options))?;
        println!("{}", file_bench::render(&report));
        return Ok(());
    }
    let options = bench::BenchOptions {
        width: w,
        height: h,
        fps: args.fps,
        duration: seconds(args.duration, "--duration")?,
        warmup: seconds(args.warmup, "--warmup")?,
        json: args.json,
    };
    let report = runtime()?.block_on(bench::run(options))?;
    println!("{}", bench::render(&report));
    Ok(())
}
