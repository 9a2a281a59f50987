//! Test helpers: a shared compositor on whatever adapter the machine has (lavapipe here),
//! synthetic frames, and CPU colour conversions for snapshots.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::{Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use edge_compose::{Compositor, CompositorOptions};
use edge_core::{FrameMeta, I420Frame, PlaneLayout};

/// One compositor per test binary: creating a device and warming pipelines on lavapipe takes
/// a while, and tests in one binary run concurrently on 2 cores.
pub fn compositor() -> MutexGuard<'static, Compositor> {
    static COMPOSITOR: OnceLock<Mutex<Compositor>> = OnceLock::new();
    COMPOSITOR
        .get_or_init(|| {
            // Mesa warns and may fail to create its shader cache without a runtime dir.
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                let dir = std::env::temp_dir().join("edge-compose-test-runtime");
                std::fs::create_dir_all(&dir).unwrap();
                std::env::set_var("XDG_RUNTIME_DIR", dir);
            }
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "edge_compose=info".into()),
                )
                .with_test_writer()
                .try_init();
            let compositor = Compositor::new(CompositorOptions::default())
                .expect("a Vulkan or GL adapter (lavapipe/llvmpipe at least) is installed");
            eprintln!("compositor adapter: {:?}", compositor.adapter());
            Mutex::new(compositor)
        })
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn meta(seq: u64) -> FrameMeta {
    FrameMeta {
        seq,
        pts_ns: seq * 33_333_333,
        received_unix_us: 1_700_000_000_000_000 + seq,
    }
}

/// Gradients plus a fine checker so that a wrong offset, stride or filter shows up.
pub fn synthetic_frame(width: u32, height: u32, seq: u64) -> I420Frame {
    let layout = PlaneLayout::new(width, height).unwrap();
    let mut data = Vec::with_capacity(layout.total_len());
    for y in 0..height {
        for x in 0..width {
            let checker = if (x / 3 + y / 5) % 2 == 0 { 0 } else { 20 };
            data.push((16 + (x * 180 / width) + checker + (y % 7)) as u8);
        }
    }
    for plane in 0..2u32 {
        for y in 0..layout.chroma_height() {
            for x in 0..layout.chroma_width() {
                let v = if plane == 0 {
                    40 + y * 170 / layout.chroma_height()
                } else {
                    220 - (x * 170 / layout.chroma_width()) - (y % 3) * 5
                };
                data.push(v as u8);
            }
        }
    }
    I420Frame::new(layout, Bytes::from(data), meta(seq)).unwrap()
}

/// Straight-alpha RGBA with an alpha ramp left to right and colour changing top to bottom.
pub fn ramp_rgba(width: u32, height: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            rgba.extend_from_slice(&[
                (255 * y / (height - 1).max(1)) as u8,
                (60 + 150 * x / width) as u8,
                200,
                (255 * x / (width - 1).max(1)) as u8,
            ]);
        }
    }
    rgba
}

pub fn solid_rgba(width: u32, height: u32, rgba: [u8; 4]) -> Vec<u8> {
    rgba.repeat((width * height) as usize)
}

/// Largest absolute difference per plane (Y, U, V) between two tight I420 frames.
pub fn max_diff_per_plane(layout: PlaneLayout, a: &[u8], b: &[u8]) -> [u8; 3] {
    assert_eq!(a.len(), layout.total_len());
    assert_eq!(b.len(), layout.total_len());
    let ranges = [
        0..layout.u_offset(),
        layout.u_offset()..layout.v_offset(),
        layout.v_offset()..layout.total_len(),
    ];
    ranges.map(|r| {
        a[r.clone()]
            .iter()
            .zip(&b[r])
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    })
}

/// BT.601 limited range RGB -> I420, chroma averaged over 2x2 (the inverse of `i420_to_rgb`).
pub fn rgb_to_i420(width: u32, height: u32, rgb: &[u8], seq: u64) -> I420Frame {
    let layout = PlaneLayout::new(width, height).unwrap();
    let px = |x: u32, y: u32| {
        let i = ((y * width + x) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]].map(|v| f32::from(v) / 255.0)
    };
    let mut data = Vec::with_capacity(layout.total_len());
    for y in 0..height {
        for x in 0..width {
            let [r, g, b] = px(x, y);
            data.push((16.0 + 65.481 * r + 128.553 * g + 24.966 * b).round() as u8);
        }
    }
    let mut u = Vec::with_capacity(layout.chroma_len());
    let mut v = Vec::with_capacity(layout.chroma_len());
    for cy in 0..height / 2 {
        for cx in 0..width / 2 {
            let mut sum = [0.0f32; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(cx * 2 + dx, cy * 2 + dy);
                for c in 0..3 {
                    sum[c] += p[c] / 4.0;
                }
            }
            let [r, g, b] = sum;
            u.push((128.0 - 37.797 * r - 74.203 * g + 112.0 * b).round() as u8);
            v.push((128.0 + 112.0 * r - 93.786 * g - 18.214 * b).round() as u8);
        }
    }
    data.extend(u);
    data.extend(v);
    I420Frame::new(layout, Bytes::from(data), meta(seq)).unwrap()
}

pub fn i420_to_rgb(layout: PlaneLayout, data: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(layout.luma_len() * 3);
    for y in 0..layout.height {
        for x in 0..layout.width {
            let c = ((y / 2) * layout.chroma_width() + x / 2) as usize;
            let luma = (f32::from(data[(y * layout.width + x) as usize]) - 16.0) * 1.164;
            let cb = f32::from(data[layout.u_offset() + c]) - 128.0;
            let cr = f32::from(data[layout.v_offset() + c]) - 128.0;
            let to_u8 = |v: f32| v.round().clamp(0.0, 255.0) as u8;
            rgb.push(to_u8(luma + 1.596 * cr));
            rgb.push(to_u8(luma - 0.392 * cb - 0.813 * cr));
            rgb.push(to_u8(luma + 2.017 * cb));
        }
    }
    rgb
}

pub fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    out
}

/// A circular zone plate: luma `128 + 100 cos(pi r^2 / d)` around the centre, `d` chosen so
/// that the local frequency rises from 0 at the centre to the Nyquist limit (half a cycle per
/// pixel) at the corners, so every frequency a reduction must remove is present. Chroma: a
/// zone plate of its own (U, at its own resolution) and a diagonal ramp (V).
pub fn zone_plate(width: u32, height: u32, seq: u64) -> I420Frame {
    let layout = PlaneLayout::new(width, height).unwrap();
    let plate = |w: u32, h: u32, amplitude: f64| {
        let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
        let d = 2.0 * (cx * cx + cy * cy).sqrt();
        let mut plane = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
                let phase = std::f64::consts::PI * (dx * dx + dy * dy) / d;
                plane.push((128.0 + amplitude * phase.cos()).round() as u8);
            }
        }
        plane
    };
    let (cw, ch) = (layout.chroma_width(), layout.chroma_height());
    let mut data = plate(width, height, 100.0);
    data.extend(plate(cw, ch, 90.0));
    for y in 0..ch {
        for x in 0..cw {
            data.push((40 + (x + y) * 170 / (cw + ch)) as u8);
        }
    }
    I420Frame::new(layout, Bytes::from(data), meta(seq)).unwrap()
}

/// One frame of ffmpeg's `testsrc2` (moving test pattern with fine detail) as I420.
/// `ffmpeg` is a required test tool (`make setup` installs it).
pub fn ffmpeg_testsrc2(width: u32, height: u32, seq: u64) -> I420Frame {
    let layout = PlaneLayout::new(width, height).unwrap();
    let args = format!(
        "-f lavfi -i testsrc2=size={width}x{height}:rate=30 -frames:v 1 -pix_fmt yuv420p \
         -f rawvideo pipe:1"
    );
    let data = ffmpeg(&args.split_whitespace().collect::<Vec<_>>(), &[]);
    assert_eq!(data.len(), layout.total_len(), "ffmpeg testsrc2 frame size");
    I420Frame::new(layout, Bytes::from(data), meta(seq)).unwrap()
}

/// `source` reduced to `output` by ffmpeg's `scale=flags=area` (swscale's area filter), as
/// tight I420.
pub fn ffmpeg_scale_area(source: &I420Frame, output: PlaneLayout) -> Vec<u8> {
    let (w, h) = (source.layout.width, source.layout.height);
    let args = format!(
        "-f rawvideo -pix_fmt yuv420p -s {w}x{h} -i pipe:0 \
         -vf scale={}:{}:flags=area -pix_fmt yuv420p -f rawvideo pipe:1",
        output.width, output.height
    );
    let data = ffmpeg(&args.split_whitespace().collect::<Vec<_>>(), &source.data);
    assert_eq!(data.len(), output.total_len(), "ffmpeg scaled frame size");
    data
}

fn ffmpeg(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .stdin(if stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required for this test (`make setup`): {e}"));
    let input = child.stdin.take().map(|mut pipe| {
        let bytes = stdin.to_vec();
        std::thread::spawn(move || pipe.write_all(&bytes))
    });
    let output = child.wait_with_output().expect("ffmpeg ran");
    if let Some(writer) = input {
        writer.join().unwrap().expect("ffmpeg read its input");
    }
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// SSIM of two 8-bit planes (see [`edge_compose::quality::ssim`]); panics on planes that
/// cannot be compared, which in a test is a bug of the test.
pub fn ssim(width: u32, height: u32, a: &[u8], b: &[u8]) -> f64 {
    edge_compose::quality::ssim(width, height, a, b).expect("comparable planes")
}

/// The scale the compositor used before it filtered reductions (issue 12): one bilinear tap
/// per output sample at the centre of its pixel, whatever the ratio, so at 3:1 each output
/// pixel reads 4 of its 9 source pixels. Kept here only so that the tests can show what the
/// area filter fixes: the golden test's tolerance must reject it, and the quality test
/// reports its SSIM beside the new path's.
pub fn previous_bilinear_i420(
    source: PlaneLayout,
    data: &[u8],
    roi: edge_compose::Roi,
    output: PlaneLayout,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(output.total_len());
    let planes = [
        (source.width, source.height, 0, 1.0f32),
        (
            source.chroma_width(),
            source.chroma_height(),
            source.u_offset(),
            2.0,
        ),
        (
            source.chroma_width(),
            source.chroma_height(),
            source.v_offset(),
            2.0,
        ),
    ];
    let dst = [
        (output.width, output.height),
        (output.chroma_width(), output.chroma_height()),
        (output.chroma_width(), output.chroma_height()),
    ];
    for ((width, height, offset, divisor), (dst_w, dst_h)) in planes.into_iter().zip(dst) {
        let src = &data[offset..offset + (width * height) as usize];
        let (rx, ry) = (roi.x / divisor, roi.y / divisor);
        let step_x = roi.width / divisor / dst_w as f32;
        let step_y = roi.height / divisor / dst_h as f32;
        for oy in 0..dst_h {
            for ox in 0..dst_w {
                let cx = (rx + (ox as f32 + 0.5) * step_x - 0.5).clamp(0.0, (width - 1) as f32);
                let cy = (ry + (oy as f32 + 0.5) * step_y - 0.5).clamp(0.0, (height - 1) as f32);
                let (bx, by) = (cx.floor(), cy.floor());
                let (fx, fy) = (cx - bx, cy - by);
                let (x0, y0) = (bx as u32, by as u32);
                let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
                let load = |x: u32, y: u32| f32::from(src[(y * width + x) as usize]);
                let top = load(x0, y0) + (load(x1, y0) - load(x0, y0)) * fx;
                let bottom = load(x0, y1) + (load(x1, y1) - load(x0, y1)) * fx;
                let value = top + (bottom - top) * fy;
                out.push((value + 0.5).floor().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}
