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
