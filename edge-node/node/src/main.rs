//! `edge-node`: the rendering node a telco runs at each 5G MEC site for live-commerce video.
//!
//! Upstream → decode once → compose per rendering on the GPU (wgpu, planar YUV) → H.264 once
//! per rendering → moq-lite over WebTransport on quinn to every viewer who shares it.

mod admin;
mod bench;
mod campaign_api;
mod campaign_check;
mod capacity;
mod capacity_ffmpeg;
mod capacity_plot;
mod capacity_upstream;
mod config;
mod demo;
mod listening;
mod log_writer;
mod node;
mod plot;
mod report;
mod understand_cli;
mod view;
mod viewer_swarm;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use config::NodeConfig;
use edge_control::viewer_control;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "edge-node", version, about = "Per-viewer live-commerce rendering at the 5G edge", long_about = None)]
struct Cli {
    /// Log format: human-readable text or one JSON object per line. Filter with RUST_LOG.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve viewers: ingest the upstream, render, encode and deliver over QUIC.
    Serve(ServeArgs),
    /// Watch a node like a viewer: subscribe to `live`, decode, report latency.
    View(ViewArgs),
    /// Run the node on the embedded default with two local viewers, then print a report.
    Demo(DemoArgs),
    /// Measure latency on the test show against a bare decode→encode floor.
    Bench(BenchArgs),
    /// Validate a config file and print every problem with its place.
    CheckConfig(CheckConfigArgs),
    /// Run a model (default: face detection) on a PNG image and print what it finds.
    Understand(understand_cli::UnderstandArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Config file (TOML, or YAML for .yaml/.yml). Without one, the embedded default serves.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Upstream URI: rtmp://, rtsp://, srt://, http(s):// (HLS), file://, or testshow://.
    #[arg(long)]
    upstream: Option<String>,
    /// UDP address for QUIC; the certificate hash is served over TCP on the same port. Port 0
    /// picks a free one; the bound addresses are printed on stdout as JSON lines.
    #[arg(long)]
    listen: Option<String>,
    /// Also publish every rendering to a MoQ relay (the fan-out tier), e.g.
    /// https://relay:4443/site-a/node-1; sets `[server] publish_to`.
    #[arg(long, value_name = "URL")]
    publish_to: Option<String>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<f64>,
    /// Admin HTTP (`/live`, `/ready`, `/metrics`, operator API `/api/v1/`) on its own thread.
    /// Port 0 picks a free one (see the `admin_listening` line on stdout).
    #[arg(long, env = "EDGE_NODE_ADMIN", default_value = "127.0.0.1:9090")]
    admin: String,
}

#[derive(Args)]
struct ViewArgs {
    /// Node URL, e.g. https://127.0.0.1:4443/ (the query says who and where the viewer is).
    url: url::Url,
    /// Seconds to watch.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Write the last decoded frame as a PNG.
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Pin the node's certificate by its SHA-256 (hex). Default: fetch /certificate.sha256.
    #[arg(long)]
    cert_sha256: Option<String>,
    /// Source frame rate, used to count skipped frames from the frame clock.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Zone hint (`?zone=`), honoured where the campaigns allow hints.
    #[arg(long)]
    zone: Option<String>,
    /// Where the viewer is (WGS 84 degrees), tested against the campaigns' geofences.
    #[arg(long, requires = "lon", allow_hyphen_values = true)]
    lat: Option<f64>,
    #[arg(long, requires = "lat", allow_hyphen_values = true)]
    lon: Option<f64>,
    /// Name on the viewer's personal coupon (with auth off; a token's name wins).
    #[arg(long)]
    name: Option<String>,
    /// Rendition to ask for, e.g. 720p (within the operator's list).
    #[arg(long)]
    rendition: Option<String>,
    /// Zoom into x,y,w,h (fractions of the source picture), sent on the control track.
    #[arg(long, value_name = "X,Y,W,H")]
    zoom: Option<String>,
    /// Tap at x,y (fractions of the frame) once the stream runs, sent on the control track.
    #[arg(long, value_name = "X,Y")]
    tap: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Config file; default: the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the viewer snapshots go.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// QUIC address for the demo node.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

#[derive(Args)]
struct BenchArgs {
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
    /// Capacity: the upstream file every run reads (its size and rate replace --resolution
    /// and --fps). Without it the bench writes one from the test show.
    #[arg(long)]
    upstream_file: Option<PathBuf>,
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
    /// Capacity: worker threads of the in-process viewers.
    #[arg(long, default_value_t = 1)]
    viewer_threads: usize,
    /// Capacity: turn content understanding off in every run (it shares the cores).
    #[arg(long)]
    no_understanding: bool,
}

#[derive(Args)]
struct CheckConfigArgs {
    /// The config file to check: a node config, or a campaign file (recognised by its
    /// [[zones]] or [[campaigns]] sections).
    file: PathBuf,
    /// Check FILE as a campaign file whatever it contains.
    #[arg(long)]
    campaigns: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,wgpu_core=warn,wgpu_hal=warn,naga=warn,moq_net=warn",
        )
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => {
            // Colours only for a person at a terminal; a file or collector gets plain text.
            let colours = std::io::stderr().is_terminal();
            builder
                .with_ansi(colours)
                .with_writer(move || log_writer::EscapingStderr {
                    keep_colours: colours,
                })
                .init()
        }
        LogFormat::Json => builder.json().with_writer(std::io::stderr).init(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(edge_control::delivery_cost::IO_THREAD_NAME)
        .build()
        .context("starting tokio")
}

fn seconds(s: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number of seconds, got {s}"))
}

/// The config file (or the embedded default) with `EDGE_NODE_*` environment overrides on top.
fn load_config(path: Option<&PathBuf>) -> Result<NodeConfig> {
    let mut config = match path {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::embedded(),
    };
    config.apply_env(std::env::vars())?;
    config.validate()?;
    Ok(config)
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve(args) => {
            let mut config = load_config(args.config.as_ref())?;
            if let Some(uri) = args.upstream {
                config.upstream.uri = uri;
            }
            if let Some(listen) = args.listen {
                config.server.listen = listen;
            }
            if let Some(relay) = args.publish_to {
                config.server.publish_to = Some(relay);
            }
            config.validate()?;
            let duration = args
                .duration
                .map(|d| seconds(d, "--duration"))
                .transpose()?;
            runtime()?.block_on(serve(config, &args.admin, duration))
        }
        Command::View(args) => {
            let (url, commands) = viewer_request(&args)?;
            let options = view::ViewOptions {
                url,
                commands,
                duration: seconds(args.duration, "--duration")?,
                decode: true,
                snapshot: args.snapshot,
                cert_sha256: args.cert_sha256.clone(),
                warmup: Duration::ZERO,
            };
            if args.fps == 0 {
                bail!("--fps must be at least 1");
            }
            let interval = Duration::from_secs_f64(1.0 / args.fps as f64);
            let report = runtime()?.block_on(view::run(options, interval))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let mut t = report::Table::new(&["", "p50", "p95", "p99"]);
                t.percentile_row("edge-to-viewer", &report.edge_to_viewer_ms, &[]);
                println!(
                    "{}\nframes received {} (keyframes {}), decoded {}, skipped {} ({} groups){}",
                    t.render(),
                    report.frames_received,
                    report.keyframes,
                    report.frames_decoded,
                    report.frames_skipped,
                    report.groups_skipped,
                    report
                        .snapshot
                        .as_ref()
                        .map(|s| format!(", snapshot {s}"))
                        .unwrap_or_default()
                );
            }
            if report.frames_received == 0 {
                bail!("no frames received from {}", report.url);
            }
            Ok(())
        }
        Command::Demo(args) => {
            let mut config = load_config(args.config.as_ref())?;
            config.server.listen = args.listen;
            config.validate()?;
            let options = demo::DemoOptions {
                config,
                duration: seconds(args.duration, "--duration")?,
                out_dir: args.out,
            };
            println!("{}", runtime()?.block_on(demo::run(options))?);
            Ok(())
        }
        Command::Bench(args) => {
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
                    bail!(
                        "--viewers, --max-groups, --bitrate-kbps and --ffmpeg-max must be at least 1"
                    );
                }
                let upstream_seconds = seconds(args.upstream_seconds, "--upstream-seconds")?;
                let ffmpeg_seconds = seconds(args.ffmpeg_seconds, "--ffmpeg-seconds")?;
                if upstream_seconds < Duration::from_secs(1)
                    || ffmpeg_seconds < Duration::from_secs(1)
                {
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
                    viewer_threads: args.viewer_threads.max(1),
                    understanding: !args.no_understanding,
                };
                let report = runtime()?.block_on(capacity::run(options))?;
                if let Some(path) = &args.json {
                    capacity_plot::write_report(&report, path)?;
                }
                println!("{}", capacity::render(&report));
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
        Command::Understand(args) => understand_cli::run(args),
        Command::CheckConfig(args)
            if args.campaigns || campaign_check::is_campaign_file(&args.file) =>
        {
            campaign_check::run(&args.file)
        }
        Command::CheckConfig(args) => match NodeConfig::load(&args.file).and_then(|mut c| {
            c.apply_env(std::env::vars())?;
            c.validate()
        }) {
            Ok(_) => {
                println!("{}: ok", args.file.display());
                Ok(())
            }
            Err(errors) => {
                for p in &errors.0 {
                    println!("{p}");
                }
                bail!("{}: {} problem(s)", args.file.display(), errors.0.len())
            }
        },
    }
}

async fn serve(config: NodeConfig, admin_listen: &str, duration: Option<Duration>) -> Result<()> {
    // Admin first: probes answer (not ready) while the GPU, QUIC and upstream come up.
    let telemetry = std::sync::Arc::new(edge_telemetry::Telemetry::new());
    let grace = Duration::from_millis(config.server.drain_grace_ms);
    let (admin, mut drain_requests) = admin::start(
        admin::AdminOptions {
            listen: admin_listen.to_string(),
            token: config.admin.token.clone(),
            default_drain_grace: grace,
        },
        telemetry.clone(),
    )?;
    listening::Listening::AdminListening {
        admin: admin.local_addr,
    }
    .report();
    let node = node::Node::start(config, telemetry.clone(), Duration::from_secs(15)).await?;
    admin.attach_delivery(&node.server);
    admin.attach_campaigns(node.campaigns.clone());
    admin.attach_viewers(node.viewers.clone());
    let url = node.local_url();
    let certificate_sha256 = node.server.certificate_sha256_hex();
    eprintln!(
        "edge-node serving at {url} (QUIC/WebTransport, broadcast `live`); certificate sha256 {certificate_sha256}; admin http://{}/",
        admin.local_addr
    );
    listening::Listening::Serving {
        quic: node.local_addr(),
        url: url.as_str(),
        certificate_sha256,
        admin: admin.local_addr,
    }
    .report();
    // SIGTERM/SIGINT and `POST /api/v1/drain` start the same drain; `--duration` just stops.
    let run_for = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let drain_grace = tokio::select! {
        _ = run_for => None,
        _ = shutdown_signal() => {
            tracing::info!(grace_ms = grace.as_millis() as u64, "signal: draining");
            Some(grace)
        }
        Some(request) = drain_requests.recv() => {
            tracing::info!(grace_ms = request.grace.as_millis() as u64, "operator: draining");
            Some(request.grace)
        }
    };
    let snapshot = node.telemetry.snapshot();
    match drain_grace {
        Some(grace) => node.drain(grace).await,
        None => {
            tracing::info!("duration reached: stopping");
            node.shutdown().await;
        }
    }
    tracing::info!(
        frames_in = snapshot.frames_in,
        node_latency_p99_ms = snapshot.node_latency_ms.p99,
        "stopped"
    );
    Ok(())
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The viewer's URL query and control messages from `edge-node view`'s options.
fn viewer_request(args: &ViewArgs) -> Result<(url::Url, Vec<viewer_control::ControlMessage>)> {
    let mut url = args.url.clone();
    {
        let mut query = url.query_pairs_mut();
        if let Some(zone) = &args.zone {
            query.append_pair("zone", zone);
        }
        if let (Some(lat), Some(lon)) = (args.lat, args.lon) {
            query.append_pair("lat", &lat.to_string());
            query.append_pair("lon", &lon.to_string());
        }
        if let Some(name) = &args.name {
            query.append_pair("name", name);
        }
        if let Some(rendition) = &args.rendition {
            query.append_pair("rendition", rendition);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let mut commands = Vec::new();
    if let Some(zoom) = &args.zoom {
        let rect =
            edge_control::routing::parse_zoom(zoom).map_err(|e| anyhow::anyhow!("--zoom: {e}"))?;
        commands.push(viewer_control::ControlMessage::Zoom(rect));
    }
    if let Some(tap) = &args.tap {
        let parts: Vec<f64> = tap
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("--tap {tap:?}: expected x,y fractions like 0.8,0.8"))?;
        let [x, y] = parts[..] else {
            bail!("--tap {tap:?}: expected two numbers x,y");
        };
        let tap = viewer_control::ControlMessage::Tap { x, y };
        viewer_control::parse(viewer_control::encode(&tap).as_bytes())
            .map_err(|e| anyhow::anyhow!("--tap: {e}"))?;
        commands.push(tap);
    }
    Ok((url, commands))
}
