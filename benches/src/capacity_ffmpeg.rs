//! The baseline `bench --capacity` compares the node with: one `ffmpeg` process per zone, each
//! decoding the same upstream file, drawing the zone's ad over it and encoding with libx264 at
//! the node's preset, bitrate and GOP (output discarded). N processes run side by side, N
//! raised by one until one of them falls behind real time: its wall time exceeds the media time
//! it produced by more than [`REAL_TIME_TOLERANCE`].
//!
//! Each process reports itself: `-progress pipe:1` (frames and media time produced) and
//! `-benchmark` (`bench: utime=... stime=... rtime=...`, its own CPU and wall time). The
//! parsers and the verdict are pure and tested below.

use anyhow::{bail, Context, Result};
use edge_core::placement::Anchor;
use edge_telemetry::cpu_usage::CpuSample;
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process whose wall time exceeds its media time by more than this share fell behind.
pub const REAL_TIME_TOLERANCE: f64 = 0.05;
/// Bytes of a process's stderr kept (its banner, stream list and x264 summary fit easily).
const STDERR_KEPT_BYTES: u64 = 64 * 1024;
/// Characters of ffmpeg's own words quoted in an error.
const QUOTED_CHARS: usize = 300;
/// Busy cores of other programs above which a failed step is measured again.
const QUIET_CORES: f64 = 0.2;
/// How often a step that fell behind on a busy machine is measured again.
const BUSY_RETRIES: usize = 2;

/// The zone's ad as ffmpeg draws it: the PNG the node draws, at its size, anchored where the
/// campaign anchors it (ffmpeg does not move it off faces).
#[derive(Clone, Debug)]
pub struct ZoneAd {
    pub png: PathBuf,
    pub anchor: Anchor,
    /// Pixels from the anchored edges `[x, y]`.
    pub margin_px: [i32; 2],
}

/// ffmpeg `overlay` x and y expressions for an anchor (`W`/`H` the frame, `w`/`h` the ad).
pub fn overlay_position(anchor: Anchor, margin_px: [i32; 2]) -> (String, String) {
    use Anchor::*;
    let [mx, my] = margin_px;
    let x = match anchor {
        TopLeft | Left | BottomLeft => format!("{mx}"),
        Top | Center | Bottom => "(W-w)/2".to_string(),
        TopRight | Right | BottomRight => format!("W-w-{mx}"),
    };
    let y = match anchor {
        TopLeft | Top | TopRight => format!("{my}"),
        Left | Center | Right => "(H-h)/2".to_string(),
        BottomLeft | Bottom | BottomRight => format!("H-h-{my}"),
    };
    (x, y)
}

pub struct FfmpegOptions {
    pub input: PathBuf,
    /// Process `i` draws `ads[i % ads.len()]` (one zone after the other, like the node's ramp).
    pub ads: Vec<ZoneAd>,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub gop_frames: u32,
    /// Media time each process encodes per step (the input loops if it is shorter).
    pub seconds: f64,
    /// The ramp stops here even in real time.
    pub max_processes: usize,
}

/// What one ffmpeg process said about itself.
#[derive(Clone, Debug, Serialize)]
pub struct FfmpegRun {
    pub frames: u64,
    pub media_seconds: f64,
    pub wall_seconds: f64,
    pub wall_over_media: f64,
    pub cpu_seconds: f64,
    pub cpu_ms_per_frame: f64,
    pub real_time: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FfmpegStep {
    pub processes: usize,
    /// Measurements of this step (more than one when it fell behind on a busy machine).
    pub attempts: usize,
    /// Every process kept real time.
    pub real_time: bool,
    /// The slowest process's wall time / media time.
    pub worst_wall_over_media: f64,
    /// CPU of all processes together over the step's wall time, in cores.
    pub ffmpeg_cores: f64,
    /// Mean CPU per frame per process (decode + overlay + encode).
    pub cpu_ms_per_frame: f64,
    /// Busy cores outside the ffmpeg processes and this bench in the same seconds.
    pub rest_of_machine_cores: f64,
    pub runs: Vec<FfmpegRun>,
}

#[derive(Debug, Serialize)]
pub struct FfmpegComparison {
    /// The first process's command line, as run.
    pub command: String,
    pub ffmpeg_version: String,
    pub definition: String,
    /// The most processes that all kept real time, every step up to it included.
    pub max_real_time: usize,
    pub steps: Vec<FfmpegStep>,
}

/// Media time and frames from ffmpeg's `-progress` output (`key=value` lines, one block per
/// report, the last one ending in `progress=end`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    pub frames: u64,
    pub out_time_us: u64,
    pub ended: bool,
}

pub fn parse_progress(text: &str) -> Progress {
    let mut progress = Progress::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        match key {
            "frame" => progress.frames = value.trim().parse().unwrap_or(progress.frames),
            // "N/A" before the first frame.
            "out_time_us" => {
                progress.out_time_us = value.trim().parse().unwrap_or(progress.out_time_us)
            }
            "progress" => progress.ended = value.trim() == "end",
            _ => {}
        }
    }
    progress
}

/// CPU and wall time from ffmpeg's `-benchmark` line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchTimes {
    pub user_s: f64,
    pub system_s: f64,
    pub real_s: f64,
}

/// Reads `bench: utime=1.234s stime=0.056s rtime=8.012s` from ffmpeg's stderr.
pub fn parse_bench_times(stderr: &str) -> Option<BenchTimes> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("bench: utime="))?;
    let field = |name: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))?
            .strip_suffix('s')?
            .parse()
            .ok()
    };
    Some(BenchTimes {
        user_s: field("utime=")?,
        system_s: field("stime=")?,
        real_s: field("rtime=")?,
    })
}

/// Kept real time: wall time at most [`REAL_TIME_TOLERANCE`] over the media time produced.
pub fn kept_real_time(wall_seconds: f64, media_seconds: f64) -> bool {
    media_seconds > 0.0 && wall_seconds <= media_seconds * (1.0 + REAL_TIME_TOLERANCE)
}

/// The most processes such that every step up to it kept real time.
pub fn max_real_time(steps: &[FfmpegStep]) -> usize {
    steps
        .iter()
        .take_while(|s| s.real_time)
        .map(|s| s.processes)
        .max()
        .unwrap_or(0)
}

/// One process's report from its progress and stderr.
fn run_report(progress: &str, stderr: &str, fps: u32) -> Result<FfmpegRun> {
    let progress = parse_progress(progress);
    let times = parse_bench_times(stderr).with_context(|| {
        format!(
            "ffmpeg printed no `bench:` line; its last words: {}",
            last_words(stderr)
        )
    })?;
    if !progress.ended || progress.frames == 0 {
        bail!(
            "ffmpeg ended after {} frames without finishing; its last words: {}",
            progress.frames,
            last_words(stderr)
        );
    }
    // Frames over the rate, not out_time: out_time is the last frame's start.
    let media_seconds = progress.frames as f64 / f64::from(fps.max(1));
    let cpu_seconds = times.user_s + times.system_s;
    Ok(FfmpegRun {
        frames: progress.frames,
        media_seconds,
        wall_seconds: times.real_s,
        wall_over_media: times.real_s / media_seconds,
        cpu_seconds,
        cpu_ms_per_frame: cpu_seconds * 1e3 / progress.frames as f64,
        real_time: kept_real_time(times.real_s, media_seconds),
    })
}

fn last_words(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing)");
    line.chars().take(QUOTED_CHARS).collect()
}

/// Debian's ffmpeg, or a clear error saying how to get it.
pub fn ffmpeg_version() -> Result<String> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .context("running `ffmpeg -version`: install Debian's ffmpeg (scripts/setup-system.sh)")?;
    if !output.status.success() {
        bail!("`ffmpeg -version` failed: {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("ffmpeg")
        .chars()
        .take(QUOTED_CHARS)
        .collect())
}

/// The arguments of process `index`.
pub fn ffmpeg_args(options: &FfmpegOptions, index: usize) -> Vec<String> {
    let ad = &options.ads[index % options.ads.len()];
    let (x, y) = overlay_position(ad.anchor, ad.margin_px);
    let filter = format!("[0][1]overlay=x={x}:y={y}");
    let seconds = format!("{:.3}", options.seconds);
    let bitrate = format!("{}k", options.bitrate_kbps);
    let gop = options.gop_frames.to_string();
    let (input, png) = (path_arg(&options.input), path_arg(&ad.png));
    let args: [&str; 30] = [
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-benchmark",
        "-progress",
        "pipe:1",
        "-stream_loop",
        "-1",
        "-re",
        "-t",
        &seconds,
        "-i",
        &input,
        "-i",
        &png,
        "-filter_complex",
        &filter,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-b:v",
        &bitrate,
        "-g",
        &gop,
        "-f",
        "null",
        "-",
    ];
    args.iter().map(|s| s.to_string()).collect()
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The ramp: 1, 2, 3, ... processes until one falls behind real time.
pub async fn ramp(options: FfmpegOptions) -> Result<FfmpegComparison> {
    if options.ads.is_empty() || options.max_processes == 0 {
        bail!("the ffmpeg ramp needs an ad and at least one process");
    }
    let version = ffmpeg_version()?;
    let command = std::iter::once("ffmpeg".to_string())
        .chain(ffmpeg_args(&options, 0).into_iter().map(|a| {
            if a.contains(' ') || a.contains('[') {
                format!("'{a}'")
            } else {
                a
            }
        }))
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!(
        "capacity: ffmpeg per zone ({version}), {:.0} s of media per step, one more process per step",
        options.seconds
    );
    let options = std::sync::Arc::new(options);
    let mut steps = Vec::new();
    for processes in 1..=options.max_processes {
        let mut attempts = 1;
        let mut step = measure_step(&options, processes).await?;
        while !step.real_time
            && step.rest_of_machine_cores > QUIET_CORES
            && attempts <= BUSY_RETRIES
        {
            eprintln!(
                "capacity: ffmpeg x{processes}: behind while other programs took {:.2} cores; measuring again",
                step.rest_of_machine_cores
            );
            attempts += 1;
            let again = measure_step(&options, processes).await?;
            if again.real_time || again.rest_of_machine_cores < step.rest_of_machine_cores {
                step = again;
            }
        }
        step.attempts = attempts;
        eprintln!(
            "capacity: ffmpeg x{processes:>2}: {} (slowest wall/media {:.3}), {:.2} cores, {:.1} ms CPU per frame each, rest of machine {:.2} cores",
            if step.real_time { "real time" } else { "BEHIND real time" },
            step.worst_wall_over_media,
            step.ffmpeg_cores,
            step.cpu_ms_per_frame,
            step.rest_of_machine_cores
        );
        let behind = !step.real_time;
        steps.push(step);
        if behind {
            break;
        }
    }
    Ok(FfmpegComparison {
        command,
        ffmpeg_version: version,
        definition: format!(
            "N ffmpeg processes at once, each decoding the upstream file at its rate (-re), \
             drawing its zone's ad and encoding with libx264 at the node's preset, bitrate and \
             GOP; a process keeps real time when its wall time (ffmpeg -benchmark rtime) is at \
             most {:.0}% over the media time it produced",
            REAL_TIME_TOLERANCE * 100.0
        ),
        max_real_time: max_real_time(&steps),
        steps,
    })
}

async fn measure_step(
    options: &std::sync::Arc<FfmpegOptions>,
    processes: usize,
) -> Result<FfmpegStep> {
    let options = options.clone();
    tokio::task::spawn_blocking(move || run_processes(&options, processes))
        .await
        .context("the ffmpeg step's thread")?
}

/// Starts `processes` ffmpeg processes at once and waits for all of them.
fn run_processes(options: &FfmpegOptions, processes: usize) -> Result<FfmpegStep> {
    let cpu_before = CpuSample::now("no-thread-has-this-name")?;
    let mut children = Vec::with_capacity(processes);
    for index in 0..processes {
        let spawned = Command::new("ffmpeg")
            .args(ffmpeg_args(options, index))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting ffmpeg");
        match spawned {
            Ok(child) => children.push(Running::new(child)),
            Err(e) => {
                for mut running in children {
                    running.kill();
                }
                return Err(e);
            }
        }
    }
    // Generous: a process far behind real time still finishes, and a hung one is ended.
    let deadline = Instant::now() + Duration::from_secs_f64(options.seconds * 4.0 + 20.0);
    let mut outputs = Vec::with_capacity(processes);
    let mut failure = None;
    for running in children {
        match running.finish(deadline) {
            Ok(output) => outputs.push(output),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let cpu = cpu_before.until(&CpuSample::now("no-thread-has-this-name")?);
    let runs = outputs
        .iter()
        .map(|(progress, stderr)| run_report(progress, stderr, options.fps))
        .collect::<Result<Vec<_>>>()?;
    let wall = runs.iter().map(|r| r.wall_seconds).fold(0.0, f64::max);
    let cpu_seconds: f64 = runs.iter().map(|r| r.cpu_seconds).sum();
    let ffmpeg_cores = cpu_seconds / wall.max(1e-9);
    Ok(FfmpegStep {
        processes,
        attempts: 1,
        real_time: runs.iter().all(|r| r.real_time),
        worst_wall_over_media: runs.iter().map(|r| r.wall_over_media).fold(0.0, f64::max),
        ffmpeg_cores,
        cpu_ms_per_frame: runs.iter().map(|r| r.cpu_ms_per_frame).sum::<f64>() / runs.len() as f64,
        // This bench process is idle meanwhile; what is left is other programs.
        rest_of_machine_cores: (cpu.machine_busy * cpu.machine_cores as f64
            - cpu.process_cores
            - ffmpeg_cores)
            .max(0.0),
        runs,
    })
}

/// A started process with threads draining its pipes (so it never blocks on a full pipe).
struct Running {
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    fn new(mut child: Child) -> Self {
        let drain = |pipe: Option<Box<dyn Read + Send>>, limit: u64| {
            pipe.map(|pipe| {
                std::thread::spawn(move || {
                    let mut text = Vec::new();
                    let mut limited = pipe.take(limit);
                    let _ = limited.read_to_end(&mut text);
                    // Keep draining past the limit so the process never blocks.
                    let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
                    String::from_utf8_lossy(&text).into_owned()
                })
            })
        };
        let stdout = drain(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            // Progress blocks replace each other; only the last matters, but read them all.
            u64::MAX,
        );
        let stderr = drain(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            STDERR_KEPT_BYTES,
        );
        Self {
            child,
            stdout,
            stderr,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the process exits (killing it at `deadline`); returns (stdout, stderr).
    fn finish(mut self, deadline: Instant) -> Result<(String, String)> {
        let status = loop {
            if let Some(status) = self.child.try_wait().context("waiting for ffmpeg")? {
                break status;
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!("an ffmpeg process ran past its deadline and was ended");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let join = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let (stdout, stderr) = (join(self.stdout.take()), join(self.stderr.take()));
        if !status.success() {
            bail!("ffmpeg exited with {status}: {}", last_words(&stderr));
        }
        Ok((stdout, stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRESS: &str = "frame=29\nfps=0.00\nout_time_us=966667\nspeed=0.98x\nprogress=continue\n\
                            frame=240\nfps=29.9\nout_time_us=N/A\nout_time_us=7966667\nspeed=0.99x\nprogress=end\n";

    #[test]
    fn progress_keeps_the_last_report() {
        assert_eq!(
            parse_progress(PROGRESS),
            Progress {
                frames: 240,
                out_time_us: 7_966_667,
                ended: true
            }
        );
        let cut = parse_progress("frame=12\nout_time_us=N/A\nprogress=continue\nframe=");
        assert_eq!((cut.frames, cut.out_time_us, cut.ended), (12, 0, false));
    }

    #[test]
    fn bench_line_is_read_among_the_log() {
        let stderr = "video:663kB audio:0kB\nbench: utime=2.345s stime=0.120s rtime=8.064s\nbench: maxrss=92152kB\n[libx264 @ 0x1] kb/s:2713.67\n";
        assert_eq!(
            parse_bench_times(stderr),
            Some(BenchTimes {
                user_s: 2.345,
                system_s: 0.12,
                real_s: 8.064
            })
        );
        assert_eq!(parse_bench_times("bench: maxrss=1kB\n"), None);
        assert_eq!(parse_bench_times("bench: utime=xs stime=0s rtime=1s"), None);
    }

    #[test]
    fn real_time_allows_five_percent() {
        assert!(kept_real_time(8.0, 8.0));
        assert!(kept_real_time(8.4, 8.0));
        assert!(!kept_real_time(8.41, 8.0));
        assert!(!kept_real_time(1.0, 0.0), "no media is never real time");
    }

    #[test]
    fn a_run_report_uses_frames_over_the_rate() {
        let stderr = "bench: utime=1.100s stime=0.100s rtime=8.200s\n";
        let run = run_report(PROGRESS, stderr, 30).unwrap();
        assert_eq!(run.frames, 240);
        assert!((run.media_seconds - 8.0).abs() < 1e-9);
        assert!((run.wall_over_media - 1.025).abs() < 1e-9);
        assert!((run.cpu_ms_per_frame - 5.0).abs() < 1e-9);
        assert!(run.real_time);
        let unfinished = run_report("frame=3\nprogress=continue\n", stderr, 30).unwrap_err();
        assert!(unfinished.to_string().contains("3 frames"), "{unfinished}");
        let silent = run_report(PROGRESS, &"x".repeat(10_000), 30).unwrap_err();
        assert!(silent.to_string().len() < 400, "ffmpeg's words are bounded");
    }

    #[test]
    fn the_count_stops_at_the_first_step_behind() {
        let step = |processes, real_time| FfmpegStep {
            processes,
            attempts: 1,
            real_time,
            worst_wall_over_media: 1.0,
            ffmpeg_cores: 0.0,
            cpu_ms_per_frame: 0.0,
            rest_of_machine_cores: 0.0,
            runs: Vec::new(),
        };
        assert_eq!(
            max_real_time(&[step(1, true), step(2, true), step(3, false)]),
            2
        );
        assert_eq!(max_real_time(&[step(1, false), step(2, true)]), 0);
        assert_eq!(max_real_time(&[]), 0);
    }

    #[test]
    fn processes_take_turns_with_the_zone_ads() {
        let options = FfmpegOptions {
            input: PathBuf::from("/tmp/in.mp4"),
            ads: vec![
                ZoneAd {
                    png: PathBuf::from("/tmp/a.png"),
                    anchor: Anchor::BottomRight,
                    margin_px: [24, 16],
                },
                ZoneAd {
                    png: PathBuf::from("/tmp/b.png"),
                    anchor: Anchor::Top,
                    margin_px: [24, 16],
                },
            ],
            fps: 30,
            bitrate_kbps: 2500,
            gop_frames: 30,
            seconds: 8.0,
            max_processes: 4,
        };
        let args = ffmpeg_args(&options, 1);
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-b:v"), "2500k");
        assert_eq!(after("-g"), "30");
        assert_eq!(after("-preset"), "ultrafast");
        assert_eq!(after("-tune"), "zerolatency");
        assert_eq!(after("-t"), "8.000");
        assert!(args.contains(&"/tmp/b.png".to_string()));
        assert_eq!(after("-filter_complex"), "[0][1]overlay=x=(W-w)/2:y=16");
        let first = ffmpeg_args(&options, 2);
        assert!(first.contains(&"/tmp/a.png".to_string()));
        assert!(first.contains(&"[0][1]overlay=x=W-w-24:y=H-h-16".to_string()));
    }
}
