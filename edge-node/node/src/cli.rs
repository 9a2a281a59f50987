//! The `edge-node` command line: flags of every subcommand, logging set-up, and dispatch.
//! `bench` is delegated to the `edge-bench` binary installed beside this one, so benchmark code
//! stays out of the production binary.

use crate::config::NodeConfig;
use crate::{campaign_check, demo, log_writer, report, understand_cli, view};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
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
    /// Measure latency on the test show against a bare decode→encode floor, or capacity
    /// (`--capacity`); runs `edge-bench`, installed beside this binary (`bench --help`).
    Bench(BenchPassThrough),
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
    /// Node URL, e.g. https://127.0.0.1:4443/ (WebTransport), or ws://127.0.0.1:4443/ for the
    /// WebSocket fallback iPhones use (the query says who and where the viewer is).
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

/// `edge-node bench ...`: everything after `bench` goes to `edge-bench` as it is.
#[derive(Args)]
#[command(disable_help_flag = true)]
struct BenchPassThrough {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<std::ffi::OsString>,
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

/// The whole `edge-node` command: parses the command line, runs it, and turns an error into a
/// message and a failing exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Bench(_)) {
        init_tracing(cli.log_format);
    }
    match run(cli.command, cli.log_format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, as text (control characters escaped, colours only on a terminal) or JSON.
pub fn init_tracing(format: LogFormat) {
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

/// The runtime every subcommand runs on. Its threads carry the name the delivery-cost meter
/// reads, so a node running in-process (demo, benches) measures its send cost too.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(edge_control::delivery_cost::IO_THREAD_NAME)
        .build()
        .context("starting tokio")
}

/// `s` seconds from a flag, or an error naming the flag.
pub fn seconds(s: f64, flag: &str) -> Result<Duration> {
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

fn run(command: Command, log_format: LogFormat) -> Result<()> {
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
            runtime()?.block_on(crate::serve::serve(config, &args.admin, duration))
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
        Command::Bench(args) => run_bench(args.args, log_format),
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

/// The benchmarks' binary: beside this one (as installed and as cargo builds it), else on PATH.
fn bench_binary() -> Result<PathBuf> {
    const NAME: &str = "edge-bench";
    let mut looked = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
    {
        let beside = dir.join(NAME);
        if beside.is_file() {
            return Ok(beside);
        }
        looked.push(beside.display().to_string());
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join(NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    looked.push("$PATH".into());
    bail!(
        "the benchmarks are a separate binary, {NAME}, not installed here (looked at: {}); build it with `cargo build --release --bin {NAME}` (`make bench` does)",
        looked.join(", ")
    )
}

/// Runs `edge-bench` in this process's place, so its output, exit status and signals are the
/// command's own.
fn run_bench(args: Vec<std::ffi::OsString>, log_format: LogFormat) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let binary = bench_binary()?;
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let error = std::process::Command::new(&binary)
        .arg("--log-format")
        .arg(format)
        .args(args)
        .exec();
    Err(error).with_context(|| format!("running {}", binary.display()))
}
