//! A `file://` upstream with damage in its container is read on past the damage: viewers get
//! the rest of the file, never its first seconds again and again.
//!
//! The clips are made by ffmpeg with each picture's luma equal to its frame number (lossless
//! H.264), so every decoded frame says where in the file it came from; the test then overwrites
//! a stretch of the file's bytes.

mod common;

use common::{config, temp_dir};
use edge_media::{Ingest, UpstreamEvent};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRAMES: u32 = 250;
const FPS: u32 = 25;

/// A 10 s clip whose frame `n` has luma `n` everywhere, one keyframe a second.
fn numbered_clip(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "nullsrc=s=160x120:r={FPS},geq=lum='N':cb=128:cr=128"
        ))
        .args(["-frames:v", &FRAMES.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0"])
        .args(["-g", &FPS.to_string(), "-bf", "0", "-pix_fmt", "yuv420p"])
        .arg(path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Overwrites bytes `from..to` (fractions of the file) with zeros or with noise.
fn damage(path: &Path, from: f64, to: f64, noise: bool) -> (usize, usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let (a, b) = (
        (bytes.len() as f64 * from) as usize,
        (bytes.len() as f64 * to) as usize,
    );
    let mut state = 0x2545_f491_u32;
    for byte in &mut bytes[a..b] {
        *byte = if noise {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        } else {
            0
        };
    }
    std::fs::write(path, &bytes).unwrap();
    (a, b)
}

/// Plays `path` through the ingest until a frame from its last second comes out (or 40 s),
/// and returns the frame numbers seen in order, and the reasons of every loss.
fn play(path: &Path, stall_timeout: Duration) -> (Vec<u8>, Vec<String>) {
    let mut cfg = config(&format!("file://{}", path.display()));
    cfg.stall_timeout = stall_timeout;
    cfg.reconnect_initial = Duration::from_millis(100);
    cfg.reconnect_max = Duration::from_millis(400);
    let numbers = Arc::new(Mutex::new(Vec::new()));
    let losses = Arc::new(Mutex::new(Vec::new()));
    let (seen, lost) = (numbers.clone(), losses.clone());
    let ingest = Ingest::start(
        cfg,
        move |frame| seen.lock().unwrap().push(frame.data[0]),
        move |event| {
            if let UpstreamEvent::Lost { reason } = event {
                lost.lock().unwrap().push(reason);
            }
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let last_second = (FRAMES - FPS) as u8;
    while Instant::now() < deadline && !numbers.lock().unwrap().iter().any(|&n| n >= last_second) {
        std::thread::sleep(Duration::from_millis(100));
    }
    ingest.stop();
    let numbers = numbers.lock().unwrap().clone();
    let losses = losses.lock().unwrap().clone();
    (numbers, losses)
}

/// Up to the first frame of the file's last second: the file was never started over, and it
/// got there.
fn assert_read_on(numbers: &[u8], losses: &[String]) {
    let last_second = (FRAMES - FPS) as u8;
    let Some(end) = numbers.iter().position(|&n| n >= last_second) else {
        panic!(
            "never reached the file's last second; frames seen (first 40, last 40): {:?} .. {:?}; losses {losses:?}",
            &numbers[..numbers.len().min(40)],
            &numbers[numbers.len().saturating_sub(40)..]
        );
    };
    let played = &numbers[..=end];
    let restarts = played.windows(2).filter(|w| w[1] < w[0]).count();
    assert_eq!(
        restarts, 0,
        "the file went back: {played:?}; losses {losses:?}"
    );
    let skipped = u32::from(last_second) + 1 - played.len() as u32;
    assert!(
        losses.iter().any(|r| r.contains("reading on from")),
        "{losses:?}"
    );
    eprintln!(
        "reached frame {} after {} frames ({skipped} skipped over the damage); losses: {losses:?}",
        played[end],
        played.len()
    );
}

/// Zeroed bytes in an MP4's media data: the demuxer stalls for longer than the stall timeout.
#[test]
fn a_stall_in_a_damaged_mp4_is_read_past() {
    let dir = temp_dir("damaged-mp4");
    let path = dir.join("numbered.mp4");
    numbered_clip(&path);
    damage(&path, 0.35, 0.5, false);
    let (numbers, losses) = play(&path, Duration::from_millis(500));
    assert_read_on(&numbers, &losses);
}

/// Noise in a Matroska file's clusters: the demuxer gives up with an end of stream long before
/// the file's end.
#[test]
fn an_early_end_of_a_damaged_mkv_is_read_past() {
    let dir = temp_dir("damaged-mkv");
    let path = dir.join("numbered.mkv");
    numbered_clip(&path);
    damage(&path, 0.35, 0.5, true);
    let (numbers, losses) = play(&path, Duration::from_millis(500));
    assert_read_on(&numbers, &losses);
}
