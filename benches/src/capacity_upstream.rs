//! The one upstream file both sides of `bench --capacity` read: the node (looping it as a live
//! upstream) and every ffmpeg-per-zone process. Either written once from the built-in test
//! show (the node's own ingest decodes it, ffmpeg's libx264 encodes it like an origin would:
//! ultrafast, no B-frames) or a file the operator names, probed by GStreamer (`edge_media::probe_file`).

use anyhow::{bail, Context, Result};
use edge_media::{Ingest, IngestConfig};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Origin bitrate of the written file: about 0.1 bit per pixel, a contribution-grade stream.
const ORIGIN_BITS_PER_PIXEL: f64 = 0.1;
/// Decoded frames waiting for ffmpeg's stdin before the newest are dropped.
const FRAMES_QUEUED: usize = 60;
/// How long the test show may take to deliver its first frame.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(20);
/// Characters of a tool's own words quoted in an error.
const QUOTED_CHARS: usize = 300;

#[derive(Clone, Debug, Serialize)]
pub struct UpstreamFile {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub seconds: f64,
    /// How it came to be: the test show written by this run, or the operator's file.
    pub origin: String,
}

impl UpstreamFile {
    /// The node's upstream URI for it, looped so it never ends.
    pub fn node_uri(&self) -> Result<String> {
        let url = url::Url::from_file_path(&self.path)
            .map_err(|()| anyhow::anyhow!("{} is not an absolute path", self.path.display()))?;
        Ok(format!("{url}?loop=1"))
    }
}

/// Writes `seconds` of the test show at `width`x`height`@`fps` into `path` (MP4, H.264 without
/// B-frames, an IDR every `gop_frames`). Takes `seconds` of wall time: the test show is live.
pub fn write_test_show(
    path: &Path,
    width: u32,
    height: u32,
    fps: u32,
    seconds: f64,
    gop_frames: u32,
) -> Result<UpstreamFile> {
    let uri = format!("testshow://?width={width}&height={height}&fps={fps}");
    let frames_wanted = (seconds * f64::from(fps)).round().max(1.0) as u64;
    let origin_kbps =
        (f64::from(width) * f64::from(height) * f64::from(fps) * ORIGIN_BITS_PER_PIXEL / 1e3)
            as u32;
    eprintln!(
        "capacity: writing the upstream file {}: {seconds:.0} s of {uri} (libx264 ultrafast, no B-frames, {origin_kbps} kbit/s, GOP {gop_frames})",
        path.display()
    );
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo"])
        .args(["-pix_fmt", "yuv420p", "-s", &format!("{width}x{height}")])
        .args(["-r", &fps.to_string(), "-i", "pipe:0"])
        .args(["-frames:v", &frames_wanted.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"])
        .args(["-bf", "0", "-g", &gop_frames.to_string()])
        .args(["-b:v", &format!("{origin_kbps}k"), "-pix_fmt", "yuv420p"])
        .args(["-movflags", "+faststart"])
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ffmpeg to write the upstream file: install Debian's ffmpeg (scripts/setup-system.sh)")?;
    let stdin = ffmpeg.stdin.take().context("ffmpeg's stdin")?;
    // ffmpeg ends at the end of its stdin, so it is waited for whatever happened here.
    let fed = feed_test_show(&uri, stdin, width, height, frames_wanted);
    let output = ffmpeg.wait_with_output().context("waiting for ffmpeg")?;
    let (written, seconds_taken) = fed?;
    if !output.status.success() {
        bail!(
            "ffmpeg could not write {}: {}",
            path.display(),
            quote(&String::from_utf8_lossy(&output.stderr))
        );
    }
    eprintln!("capacity: upstream file written ({written} frames in {seconds_taken:.1} s)");
    Ok(UpstreamFile {
        path: path.to_path_buf(),
        width,
        height,
        fps,
        seconds: written as f64 / f64::from(fps),
        origin: format!(
            "{uri}, {written} frames, libx264 ultrafast, no B-frames, {origin_kbps} kbit/s, GOP {gop_frames}"
        ),
    })
}

/// Decodes the test show with the node's own ingest and writes `frames_wanted` frames into
/// `stdin`; returns the frames written and the seconds it took.
fn feed_test_show(
    uri: &str,
    mut stdin: std::process::ChildStdin,
    width: u32,
    height: u32,
    frames_wanted: u64,
) -> Result<(u64, f64)> {
    let (frames_tx, frames_rx) = mpsc::sync_channel::<bytes::Bytes>(FRAMES_QUEUED);
    let ingest = Ingest::start(
        IngestConfig::new(uri),
        move |frame| {
            // Full only if ffmpeg stalls; a skipped frame only shortens the motion.
            let _ = frames_tx.try_send(frame.data);
        },
        |_| {},
    )
    .with_context(|| format!("starting {uri}"))?;
    let format = ingest
        .wait_first_frame(FIRST_FRAME_WAIT)
        .with_context(|| format!("{uri} delivered no frame"))?;
    if (format.width, format.height) != (width, height) {
        bail!(
            "{uri} delivered {}x{}, not {width}x{height}",
            format.width,
            format.height
        );
    }
    let started = Instant::now();
    let frame_wait = Duration::from_secs(5);
    let mut written = 0;
    let mut last_progress = Instant::now();
    let outcome = loop {
        if written == frames_wanted {
            break Ok(());
        }
        let data = match frames_rx.recv_timeout(frame_wait) {
            Ok(data) => data,
            Err(_) => break Err(anyhow::anyhow!("{uri} stopped delivering frames")),
        };
        if let Err(e) = stdin.write_all(&data) {
            break Err(e).context("writing a frame to ffmpeg");
        }
        written += 1;
        if last_progress.elapsed() >= Duration::from_secs(5) {
            eprintln!("capacity: upstream file: {written}/{frames_wanted} frames");
            last_progress = Instant::now();
        }
    };
    ingest.stop();
    outcome.map(|()| (written, started.elapsed().as_secs_f64()))
}

/// The operator's file, probed: its size and rate decide the bench's.
pub fn probe(path: &Path) -> Result<UpstreamFile> {
    let path = path
        .canonicalize()
        .with_context(|| format!("the upstream file {}", path.display()))?;
    let info = edge_media::probe_file(&path)?;
    let probed = check_probed(&info).with_context(|| format!("probing {}", path.display()))?;
    Ok(UpstreamFile {
        origin: format!(
            "given file, {} {}x{}@{}, {}",
            probed.codec,
            probed.width,
            probed.height,
            probed.fps,
            info.duration.map_or("length unknown".into(), |d| format!(
                "{:.1} s",
                d.as_secs_f64()
            ))
        ),
        path,
        width: probed.width,
        height: probed.height,
        fps: probed.fps,
        seconds: info.duration.map_or(0.0, |d| d.as_secs_f64()),
    })
}

#[derive(Debug, PartialEq)]
pub struct Probed {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Whole frames per second (rounded).
    pub fps: u32,
}

/// What the bench can use of a probed file: even sides of at least 16, a rate of 1-120 fps.
pub fn check_probed(info: &edge_media::FileInfo) -> Result<Probed> {
    let (width, height) = (info.width, info.height);
    if width < 16 || height < 16 || width % 2 != 0 || height % 2 != 0 {
        bail!("the video is {width}x{height}; the node needs even sides >= 16");
    }
    let fps = info.fps.round();
    if !(1.0..=120.0).contains(&fps) {
        bail!("frame rate {:.3} is not 1..=120 fps", info.fps);
    }
    Ok(Probed {
        codec: quote(&info.codec),
        width,
        height,
        fps: fps as u32,
    })
}

fn quote(text: &str) -> String {
    text.trim().chars().take(QUOTED_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(width: u32, height: u32, fps: f64) -> edge_media::FileInfo {
        edge_media::FileInfo {
            codec: "h264".into(),
            width,
            height,
            fps,
            duration: Some(Duration::from_secs(12)),
        }
    }

    #[test]
    fn probe_keeps_size_and_rounds_the_rate() {
        assert_eq!(
            check_probed(&info(1280, 720, 30000.0 / 1001.0)).unwrap(),
            Probed {
                codec: "h264".into(),
                width: 1280,
                height: 720,
                fps: 30,
            }
        );
    }

    #[test]
    fn probe_refuses_what_the_bench_cannot_use() {
        assert!(check_probed(&info(640, 360, 25.0)).is_ok());
        assert!(check_probed(&info(641, 360, 25.0)).is_err());
        assert!(check_probed(&info(8, 8, 25.0)).is_err());
        assert!(check_probed(&info(640, 360, 0.0)).is_err());
        assert!(check_probed(&info(640, 360, f64::NAN)).is_err());
        assert!(check_probed(&info(640, 360, 1e9)).is_err());
        let mut long_codec = info(640, 360, 25.0);
        long_codec.codec = "x".repeat(5000);
        assert!(check_probed(&long_codec).unwrap().codec.len() <= QUOTED_CHARS);
    }

    #[test]
    fn probe_reads_a_real_file_with_gstreamer() {
        let dir = std::env::temp_dir().join(format!("edge-bench-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clip.mp4");
        let status = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
            ])
            .args(["-t", "2", "-c:v", "libx264", "-preset", "ultrafast"])
            .arg(&path)
            .status()
            .expect("ffmpeg (scripts/setup-system.sh installs it)");
        assert!(status.success());
        let file = probe(&path).unwrap();
        assert_eq!((file.width, file.height, file.fps), (320, 240, 25));
        assert!((file.seconds - 2.0).abs() < 0.2, "length {}", file.seconds);
        assert!(file.origin.contains("h264 320x240@25"), "{}", file.origin);
        let not_media = dir.join("not-media.mp4");
        std::fs::write(&not_media, b"not a media file").unwrap();
        let err = format!("{:#}", probe(&not_media).unwrap_err());
        assert!(err.contains("not-media.mp4"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_node_loops_the_file() {
        let file = UpstreamFile {
            path: PathBuf::from("/tmp/x/upstream.mp4"),
            width: 1280,
            height: 720,
            fps: 30,
            seconds: 12.0,
            origin: String::new(),
        };
        assert_eq!(
            file.node_uri().unwrap(),
            "file:///tmp/x/upstream.mp4?loop=1"
        );
        let spaced = UpstreamFile {
            path: PathBuf::from("/tmp/a b/up.mp4"),
            ..file
        };
        assert_eq!(
            spaced.node_uri().unwrap(),
            "file:///tmp/a%20b/up.mp4?loop=1"
        );
    }
}
