//! `bench --upstream-file FILE`: the node's latency on an operator's file (a 4K30 room, say)
//! with one full-frame 720p viewer and one zoomed 720p viewer, beside a decode-only pass over
//! the same file in the same run, and the zoomed viewer's picture compared with the ideal crop
//! of the source frame it shows.

use crate::capacity_upstream::{self, UpstreamFile};
use anyhow::{bail, Context, Result};
use edge_compose::{cpu_reference, quality, Roi};
use edge_control::viewer_control::{self, ControlMessage, NormalizedRect};
use edge_core::geometry::Rect;
use edge_core::sei::unix_now_us;
use edge_core::stats::Percentiles;
use edge_core::zoom::{roi_for, RoiGeometry, ZoomCommand};
use edge_core::PlaneLayout;
use edge_deliver::client::{self, ClientOptions};
use edge_media::{DecodedFrame, Ingest, IngestConfig, ViewDecoder};
use edge_node::config::NodeConfig;
use edge_node::node::Node;
use edge_node::report::Table;
use edge_node::view::{self, ViewOptions};
use edge_telemetry::{Stage, Telemetry, TelemetrySnapshot};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The rendition both viewers watch, in lines.
const VIEW_LINES: u32 = 720;
/// The zone of the full-frame viewer: the campaign's overlays are drawn on it, as for a real
/// audience.
const FULL_FRAME_ZONE: &str = "default";
/// The zone of the zoomed viewer: no overlays, so its picture is the source's pixels alone and
/// can be compared with the ideal crop.
const ZOOM_ZONE: &str = "zoom-check";
/// Largest zoom the bench's campaign allows (the default campaign's).
const MAX_ZOOM: f64 = 4.0;
/// Pictures of the zoomed viewer kept for the comparison, spread over the measured seconds.
const ZOOM_SAMPLES: usize = 5;
/// Source pixels around the ROI that the ideal's filter may read.
const CROP_MARGIN_PX: i32 = 8;
/// Every this many pixels in each direction when finding the source frame a picture shows.
const MATCH_STRIDE: usize = 4;

/// The campaign of this bench: the default campaign's badge and ad for the full-frame zone,
/// nothing for the zoomed one.
const CAMPAIGN_TOML: &str = r#"
[settings]
allow_zone_hints = true
default_zone = "default"
renditions = ["720p"]
default_rendition = "720p"
max_zoom = 4.0

[[zones]]
id = "default"
name = "Full-frame viewer"

[[zones]]
id = "zoom-check"
name = "Zoomed viewer, compared with the source"

[[overlays]]
id = "live-badge"
kind = "image"
image = "builtin:live-badge"
placement = { anchor = "top-left", margin = [24, 24] }

[[overlays]]
id = "default-ad"
kind = "image"
image = "builtin:default-ad"
placement = { anchor = "bottom-right", margin = [24, 24], avoid = "faces" }
opacity = 0.95

[[campaigns]]
id = "full-frame"
zones = ["default"]
overlays = ["live-badge", "default-ad"]
"#;

pub struct FileBenchOptions {
    pub upstream: PathBuf,
    /// The zoomed viewer's region, in fractions of the frame.
    pub zoom: NormalizedRect,
    pub duration: Duration,
    pub warmup: Duration,
    pub understanding: bool,
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct FileBenchReport {
    pub upstream: UpstreamFile,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub adapter: String,
    pub understanding: bool,
    /// The same file through the node's ingest alone, just before the node's run.
    pub decode_only: DecodeOnly,
    pub node_latency_ms: Percentiles,
    pub stages: BTreeMap<Stage, Percentiles>,
    /// Decoded frames in, and dropped by the node, after the warm-up.
    pub frames_in: u64,
    pub frames_dropped: u64,
    pub dropped_share: f64,
    pub dropped_by_reason: BTreeMap<String, u64>,
    pub full_frame_viewer: FullFrameViewer,
    pub zoomed_viewer: ZoomedViewer,
}

#[derive(Debug, Serialize)]
pub struct DecodeOnly {
    /// The decoder element `decodebin` plugged (`avdec_h264`, `nvh264dec`, ...).
    pub decoder: String,
    pub decode_ms: Percentiles,
    pub frames: u64,
    /// Frames the file holds in the measured seconds at its rate.
    pub media_frames: u64,
}

#[derive(Debug, Serialize)]
pub struct FullFrameViewer {
    pub frames_received: u64,
    pub frames_skipped: u64,
    pub edge_to_viewer_ms: Percentiles,
}

#[derive(Debug, Serialize)]
pub struct ZoomedViewer {
    /// The zoom asked for, in fractions of the frame: x, y, w, h.
    pub zoom: [f64; 4],
    /// The source region the node shows for it (its ROI maths), in source pixels.
    pub roi: [i64; 4],
    pub output: (u32, u32),
    pub frames_received: u64,
    pub samples: Vec<ZoomSample>,
    pub ssim_y_min: f64,
    pub ssim_y_mean: f64,
}

#[derive(Debug, Serialize)]
pub struct ZoomSample {
    /// The source frame (index in the file) the picture shows: the closest ideal.
    pub source_frame: u64,
    /// SSIM (Y) of the received picture against the ideal crop and scale of that frame.
    pub ssim_y: f64,
}

pub async fn run(options: FileBenchOptions) -> Result<FileBenchReport> {
    let upstream = capacity_upstream::probe(&options.upstream)?;
    eprintln!("bench: upstream {}", upstream.origin);
    let source = PlaneLayout::new(upstream.width, upstream.height)
        .map_err(|e| anyhow::anyhow!("the upstream's size: {e}"))?;
    let output = edge_engine::render_groups::output_layout(source, VIEW_LINES)?;
    let roi = zoom_roi(source, output, options.zoom)?;

    eprintln!(
        "bench: decode only ({} through the node's ingest) for {:?} (+{:?} warm-up)",
        upstream.path.display(),
        options.duration,
        options.warmup
    );
    let decode_only = {
        let (uri, duration, warmup, fps) = (
            upstream.node_uri()?,
            options.duration,
            options.warmup,
            upstream.fps,
        );
        tokio::task::spawn_blocking(move || decode_only(&uri, fps, warmup, duration))
            .await
            .context("decode-only pass")??
    };
    eprintln!(
        "bench: decode only: {} p50 {:.2} ms p99 {:.2} ms, {} of {} frames",
        decode_only.decoder,
        decode_only.decode_ms.p50,
        decode_only.decode_ms.p99,
        decode_only.frames,
        decode_only.media_frames
    );

    let campaign_dir = std::env::temp_dir().join(format!("edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&campaign_dir)?;
    let campaign = campaign_dir.join("campaigns.toml");
    std::fs::write(&campaign, CAMPAIGN_TOML)?;
    let mut config = NodeConfig::embedded();
    // EDGE_NODE_* overrides as `serve` applies them (another execution provider, encoder or
    // bitrate is benched without editing code).
    config.apply_env(std::env::vars())?;
    config.upstream.uri = upstream.node_uri()?;
    config.server.listen = "127.0.0.1:0".into();
    config.output.fps = upstream.fps;
    config.campaigns.file = Some(campaign);
    // Both viewers are measured, whatever admission would decide on this machine.
    config.budget.admission = false;
    config.understanding.enabled &= options.understanding;
    config.validate()?;
    eprintln!(
        "bench: the node on it for {:?} (+{:?} warm-up): one full-frame {VIEW_LINES}p viewer, one zoomed {VIEW_LINES}p viewer (source region {roi:?}), content understanding {}",
        options.duration,
        options.warmup,
        if config.understanding.enabled { "on" } else { "off" }
    );
    let node = Node::start(config, Arc::new(Telemetry::new()), Duration::from_secs(20)).await?;
    let started_us = unix_now_us();
    node.telemetry
        .record_after(started_us + options.warmup.as_micros() as u64);
    let cert = node.server.certificate_sha256_hex().to_string();
    let url_in = |zone: &str| {
        let mut url = node.local_url();
        url.query_pairs_mut().append_pair("zone", zone);
        url
    };
    let full = view::run(
        ViewOptions {
            url: url_in(FULL_FRAME_ZONE),
            duration: options.warmup + options.duration,
            decode: false,
            snapshot: None,
            cert_sha256: Some(cert.clone()),
            warmup: options.warmup,
            commands: Vec::new(),
        },
        Duration::from_secs_f64(1.0 / f64::from(upstream.fps)),
    );
    let zoomed = watch_zoomed(url_in(ZOOM_ZONE), cert, &options);
    let at_warmup = async {
        tokio::time::sleep(options.warmup).await;
        node.telemetry.snapshot()
    };
    let (full, zoomed, at_warmup) = tokio::join!(full, zoomed, at_warmup);
    let at_end = node.telemetry.snapshot();
    let adapter = node.adapter.clone();
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&campaign_dir);
    let full = full.context("the full-frame viewer")?;
    let (zoom_frames, pictures) = zoomed.context("the zoomed viewer")?;

    eprintln!(
        "bench: comparing {} pictures of the zoomed viewer with the ideal crop of their source frames",
        pictures.len()
    );
    let path = upstream.path.clone();
    let samples =
        tokio::task::spawn_blocking(move || compare_with_source(&path, roi, output, &pictures))
            .await
            .context("comparison with the source")??;
    let ssims: Vec<f64> = samples.iter().map(|s| s.ssim_y).collect();
    let (frames_in, dropped, dropped_by_reason) = after_warmup(&at_warmup, &at_end);
    let report = FileBenchReport {
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        adapter,
        understanding: options.understanding,
        decode_only,
        node_latency_ms: at_end.node_latency_ms,
        stages: Stage::ALL
            .iter()
            .map(|s| (*s, at_end.stages.get(s).copied().unwrap_or_default()))
            .collect(),
        frames_in,
        frames_dropped: dropped,
        dropped_share: if frames_in > 0 {
            dropped as f64 / frames_in as f64
        } else {
            0.0
        },
        dropped_by_reason,
        full_frame_viewer: FullFrameViewer {
            frames_received: full.frames_received,
            frames_skipped: full.frames_skipped,
            edge_to_viewer_ms: full.edge_to_viewer_ms,
        },
        zoomed_viewer: ZoomedViewer {
            zoom: [
                options.zoom.x,
                options.zoom.y,
                options.zoom.w,
                options.zoom.h,
            ],
            roi: [
                i64::from(roi.x),
                i64::from(roi.y),
                i64::from(roi.w),
                i64::from(roi.h),
            ],
            output: (output.width, output.height),
            frames_received: zoom_frames,
            samples,
            ssim_y_min: ssims.iter().copied().fold(f64::INFINITY, f64::min),
            ssim_y_mean: ssims.iter().sum::<f64>() / ssims.len().max(1) as f64,
        },
        upstream,
    };
    if let Some(path) = &options.json {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// The source region the node shows for `zoom`: the same ROI maths as its render groups.
fn zoom_roi(source: PlaneLayout, output: PlaneLayout, zoom: NormalizedRect) -> Result<Rect> {
    let geometry = RoiGeometry::new(
        (source.width, source.height),
        (output.width, output.height),
        MAX_ZOOM,
    )
    .map_err(|e| anyhow::anyhow!("zoom geometry: {e}"))?;
    roi_for(
        ZoomCommand::Region {
            x: zoom.x,
            y: zoom.y,
            w: zoom.w,
            h: zoom.h,
        },
        &geometry,
    )
    .map_err(|e| anyhow::anyhow!("--zoom-viewer: {e}"))
}

/// Frames in and dropped between the two snapshots, and the drops by reason.
fn after_warmup(
    start: &TelemetrySnapshot,
    end: &TelemetrySnapshot,
) -> (u64, u64, BTreeMap<String, u64>) {
    let by_reason: BTreeMap<String, u64> = end
        .dropped
        .iter()
        .map(|(reason, n)| {
            let before = start.dropped.get(reason).copied().unwrap_or(0);
            (reason.clone(), n.saturating_sub(before))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    (
        end.frames_in.saturating_sub(start.frames_in),
        by_reason.values().sum(),
        by_reason,
    )
}

/// The file through the node's ingest alone (decoder, pacing), frames thrown away.
fn decode_only(uri: &str, fps: u32, warmup: Duration, duration: Duration) -> Result<DecodeOnly> {
    let frames = Arc::new(AtomicU64::new(0));
    let counted = frames.clone();
    let ingest = Ingest::start(
        IngestConfig::new(uri),
        move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        },
        |_| {},
    )?;
    ingest.wait_first_frame(Duration::from_secs(20))?;
    std::thread::sleep(warmup);
    let metrics = ingest.metrics();
    let _ = metrics.take_decode_latency();
    let before = frames.load(Ordering::Relaxed);
    std::thread::sleep(duration);
    let decode = metrics.take_decode_latency();
    let counted = frames.load(Ordering::Relaxed) - before;
    ingest.stop();
    Ok(DecodeOnly {
        decoder: metrics.decoder().unwrap_or_else(|| "unknown".into()),
        decode_ms: decode.percentiles(),
        frames: counted,
        media_frames: (duration.as_secs_f64() * f64::from(fps)).round() as u64,
    })
}

/// The zoomed viewer: asks for the zoom with its first frame, decodes everything, and keeps
/// [`ZOOM_SAMPLES`] pictures spread over the measured seconds. Returns the frames received and
/// the pictures.
async fn watch_zoomed(
    url: url::Url,
    cert: String,
    options: &FileBenchOptions,
) -> Result<(u64, Vec<DecodedFrame>)> {
    let mut subscription = client::subscribe(
        &url,
        ClientOptions {
            cert_sha256: Some(cert),
            ..ClientOptions::default()
        },
    )
    .await
    .with_context(|| format!("subscribing to {url}"))?;
    let kept: Arc<Mutex<Vec<DecodedFrame>>> = Arc::default();
    let spacing = options.duration / (ZOOM_SAMPLES as u32 + 1);
    let mut next_keep = Instant::now() + options.warmup + spacing;
    let keeping = kept.clone();
    let decoder = ViewDecoder::new(move |frame: DecodedFrame| {
        let mut kept = keeping.lock().unwrap_or_else(|p| p.into_inner());
        if Instant::now() >= next_keep && kept.len() < ZOOM_SAMPLES {
            kept.push(frame);
            next_keep += spacing;
        }
    })?;
    let deadline = tokio::time::Instant::now() + options.warmup + options.duration;
    let mut received = 0u64;
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, subscription.next_frame()).await {
        received += 1;
        if received == 1 {
            let zoom = viewer_control::encode(&ControlMessage::Zoom(options.zoom));
            subscription
                .send_control(zoom.as_bytes())
                .context("sending the zoom")?;
        }
        decoder.push(&frame.data, frame.timestamp_us)?;
    }
    subscription
        .finish("viewer left", Duration::from_secs(1))
        .await;
    decoder.finish(Duration::from_secs(2))?;
    let pictures = std::mem::take(&mut *kept.lock().unwrap_or_else(|p| p.into_inner()));
    Ok((received, pictures))
}

/// For each received picture: the source frame whose ideal crop and scale (area average,
/// [`cpu_reference::scale_i420`]) it is closest to, and its SSIM (Y) against that ideal. The
/// file is decoded once, by GStreamer (the same decoders as the node, no FFmpeg needed).
fn compare_with_source(
    file: &Path,
    roi: Rect,
    output: PlaneLayout,
    pictures: &[DecodedFrame],
) -> Result<Vec<ZoomSample>> {
    if pictures.is_empty() {
        bail!("the zoomed viewer decoded no picture after the warm-up");
    }
    if let Some(p) = pictures
        .iter()
        .find(|p| (p.width, p.height) != (output.width, output.height))
    {
        bail!(
            "the zoomed viewer received {}x{}, not the {}x{} rendition",
            p.width,
            p.height,
            output.width,
            output.height
        );
    }
    let luma = output.width as usize * output.height as usize;
    // Per picture: the closest source frame so far, its distance and its ideal luma.
    let mut best: Vec<Option<(u64, u64, Vec<u8>)>> = vec![None; pictures.len()];
    let mut problem = None;
    edge_media::decode_file_frames(file, |frame| {
        let crop = crop_around(roi, frame.layout);
        let (Some(cropped), None) = (crop_i420(frame, crop), &problem) else {
            problem.get_or_insert_with(|| {
                format!(
                    "frame {} ({}x{}) does not hold the zoomed region {roi:?}",
                    frame.meta.seq, frame.layout.width, frame.layout.height
                )
            });
            return;
        };
        let in_crop = Roi {
            x: (roi.x - crop.x) as f32,
            y: (roi.y - crop.y) as f32,
            width: roi.w as f32,
            height: roi.h as f32,
        };
        let ideal = cpu_reference::scale_i420(
            cropped.0,
            &cropped.1,
            in_crop,
            output,
            frame.colour.unwrap_or_default().chroma_site,
        );
        for (picture, best) in pictures.iter().zip(best.iter_mut()) {
            let distance = sampled_distance(&picture.data[..luma], &ideal[..luma], output.width);
            if best.as_ref().is_none_or(|(_, d, _)| distance < *d) {
                *best = Some((frame.meta.seq, distance, ideal[..luma].to_vec()));
            }
        }
    })
    .with_context(|| format!("decoding {} for the comparison", file.display()))?;
    if let Some(problem) = problem {
        bail!("{problem}");
    }
    pictures
        .iter()
        .zip(best)
        .map(|(picture, best)| {
            let (source_frame, _, ideal) = best.context("no source frame to compare with")?;
            let ssim_y = quality::ssim(output.width, output.height, &picture.data[..luma], &ideal)
                .map_err(|e| anyhow::anyhow!("SSIM: {e}"))?;
            Ok(ZoomSample {
                source_frame,
                ssim_y,
            })
        })
        .collect()
}

/// The `crop` rectangle (even, inside the frame) of a tight I420 frame, as its own tight I420.
fn crop_i420(frame: &edge_core::I420Frame, crop: Rect) -> Option<(PlaneLayout, Vec<u8>)> {
    let layout = PlaneLayout::new(crop.w, crop.h).ok()?;
    let source = frame.layout;
    if crop.x < 0
        || crop.y < 0
        || crop.x as u32 + crop.w > source.width
        || crop.y as u32 + crop.h > source.height
    {
        return None;
    }
    let mut out = Vec::with_capacity(layout.total_len());
    let (x, y) = (crop.x as u32, crop.y as u32);
    let chroma = |offset: usize| {
        let (w, h) = (layout.chroma_width(), layout.chroma_height());
        (offset, source.chroma_width(), x / 2, y / 2, w, h)
    };
    let planes = [
        (0, source.width, x, y, crop.w, crop.h),
        chroma(source.u_offset()),
        chroma(source.v_offset()),
    ];
    for (offset, stride, x, y, w, h) in planes {
        for row in y..y + h {
            let start = offset + (row * stride + x) as usize;
            out.extend_from_slice(frame.data.get(start..start + w as usize)?);
        }
    }
    Some((layout, out))
}

/// The ROI grown by [`CROP_MARGIN_PX`] on each side, on even pixels, inside the source.
fn crop_around(roi: Rect, source: PlaneLayout) -> Rect {
    let even_down = |v: i32| v.max(0) & !1;
    let x0 = even_down(roi.x - CROP_MARGIN_PX);
    let y0 = even_down(roi.y - CROP_MARGIN_PX);
    let x1 = (roi.x + roi.w as i32 + CROP_MARGIN_PX + 1).min(source.width as i32) & !1;
    let y1 = (roi.y + roi.h as i32 + CROP_MARGIN_PX + 1).min(source.height as i32) & !1;
    Rect::new(x0, y0, (x1 - x0) as u32, (y1 - y0) as u32)
}

/// Sum of absolute differences over every [`MATCH_STRIDE`]th pixel of two luma planes.
fn sampled_distance(a: &[u8], b: &[u8], width: u32) -> u64 {
    let width = width as usize;
    a.chunks(width)
        .zip(b.chunks(width))
        .step_by(MATCH_STRIDE)
        .map(|(ra, rb)| {
            ra.iter()
                .zip(rb)
                .step_by(MATCH_STRIDE)
                .map(|(x, y)| u64::from(x.abs_diff(*y)))
                .sum::<u64>()
        })
        .sum()
}

pub fn render(report: &FileBenchReport) -> String {
    let mut t = Table::new(&["", "p50", "p95", "p99"]);
    for (stage, p) in &report.stages {
        t.percentile_row(stage.as_str(), p, &[]);
    }
    t.percentile_row("node latency", &report.node_latency_ms, &[]);
    t.percentile_row(
        "full-frame viewer: edge-to-viewer",
        &report.full_frame_viewer.edge_to_viewer_ms,
        &[],
    );
    t.percentile_row(
        "decode only (same file, same run)",
        &report.decode_only.decode_ms,
        &[],
    );
    let z = &report.zoomed_viewer;
    let samples: Vec<String> = z
        .samples
        .iter()
        .map(|s| format!("{:.5} (frame {})", s.ssim_y, s.source_frame))
        .collect();
    format!(
        "{}\nadapter {}; decoder {}; content understanding {}\n{}\ndecoded frames after warm-up {}, dropped {} ({:.1}%){}\ndecode only: {} of {} frames in real time\nfull-frame viewer: {} frames received, {} skipped\nzoomed viewer ({:?} of the frame = source {}x{} at ({}, {}) -> {}x{}): {} frames received; SSIM (Y) against the ideal crop: min {:.5}, mean {:.5}: {}",
        report.upstream.origin,
        report.adapter,
        report.decode_only.decoder,
        if report.understanding { "on" } else { "off" },
        t.render(),
        report.frames_in,
        report.frames_dropped,
        report.dropped_share * 100.0,
        if report.dropped_by_reason.is_empty() {
            String::new()
        } else {
            format!(" by reason {:?}", report.dropped_by_reason)
        },
        report.decode_only.frames,
        report.decode_only.media_frames,
        report.full_frame_viewer.frames_received,
        report.full_frame_viewer.frames_skipped,
        z.zoom,
        z.roi[2],
        z.roi[3],
        z.roi[0],
        z.roi[1],
        z.output.0,
        z.output.1,
        z.frames_received,
        z.ssim_y_min,
        z.ssim_y_mean,
        samples.join(", ")
    )
}

/// `--zoom-viewer X,Y,W,H` (fractions of the frame).
pub fn parse_zoom(text: &str) -> Result<NormalizedRect> {
    let values: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--zoom-viewer {text:?}: four numbers X,Y,W,H"))?;
    let [x, y, w, h] = values[..] else {
        bail!("--zoom-viewer {text:?}: four numbers X,Y,W,H, fractions of the frame");
    };
    NormalizedRect::new(x, y, w, h).map_err(|e| anyhow::anyhow!("--zoom-viewer {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_centred_quarter_of_4k_is_a_native_crop_for_720p() {
        let source = PlaneLayout::new(3840, 2160).unwrap();
        let output = edge_engine::render_groups::output_layout(source, VIEW_LINES).unwrap();
        let zoom = parse_zoom("0.375,0.375,0.25,0.25").unwrap();
        let roi = zoom_roi(source, output, zoom).unwrap();
        assert_eq!((roi.x, roi.y, roi.w, roi.h), (1440, 810, 960, 540));
        let crop = crop_around(roi, source);
        assert_eq!((crop.x, crop.y, crop.w, crop.h), (1432, 802, 976, 556));
    }

    #[test]
    fn the_crop_stays_inside_the_source_at_its_edges() {
        let source = PlaneLayout::new(1920, 1080).unwrap();
        let crop = crop_around(Rect::new(0, 0, 480, 270), source);
        assert_eq!((crop.x, crop.y), (0, 0));
        let crop = crop_around(Rect::new(1440, 810, 480, 270), source);
        assert_eq!(
            (crop.x + crop.w as i32, crop.y + crop.h as i32),
            (1920, 1080)
        );
    }

    #[test]
    fn a_crop_keeps_each_plane_s_own_samples() {
        let layout = PlaneLayout::new(16, 8).unwrap();
        // Every sample holds its own column, plus 100 in U and 200 in V.
        let mut data = Vec::new();
        for (w, h, add) in [(16u32, 8u32, 0u8), (8, 4, 100), (8, 4, 200)] {
            for _ in 0..h {
                data.extend((0..w).map(|x| x as u8 + add));
            }
        }
        let frame = edge_core::I420Frame::new(layout, data.into(), Default::default()).unwrap();
        let (cropped, bytes) = crop_i420(&frame, Rect::new(4, 2, 8, 4)).unwrap();
        assert_eq!((cropped.width, cropped.height), (8, 4));
        assert_eq!(&bytes[..8], &[4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(
            &bytes[cropped.u_offset()..cropped.u_offset() + 4],
            &[102, 103, 104, 105]
        );
        assert_eq!(
            &bytes[cropped.v_offset()..cropped.v_offset() + 4],
            &[202, 203, 204, 205]
        );
        assert!(crop_i420(&frame, Rect::new(10, 0, 8, 4)).is_none());
    }

    #[test]
    fn zoom_flags_are_checked() {
        assert!(parse_zoom("0.1,0.1,0.5").is_err());
        assert!(parse_zoom("a,b,c,d").is_err());
        assert!(parse_zoom("0.8,0.8,0.5,0.5").is_err());
        assert!(parse_zoom("0,0,1,1").is_ok());
    }

    #[test]
    fn the_bench_campaign_is_valid_and_gives_the_zoomed_zone_no_overlays() {
        let dir = std::env::temp_dir().join(format!("edge-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("campaigns.toml");
        std::fs::write(&path, CAMPAIGN_TOML).unwrap();
        let campaigns = edge_campaign::Campaigns::load(&path).unwrap();
        assert!(campaigns.active_overlays(ZOOM_ZONE, 0).is_empty());
        assert_eq!(campaigns.active_overlays(FULL_FRAME_ZONE, 0).len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
