//! Colour as the source says, end to end: a clip made by ffmpeg with a given colour
//! description is decoded by the node's ingest, a brand-red (#E4002B) overlay is composed on
//! it in the colour the decoder reported, the result is encoded by the node's encoder, and
//! ffmpeg decodes that stream back to RGB with the matrix and range its VUI carries. The
//! overlay's pixels must come back within ΔE2000 2 of the intended colour, and a sharp
//! vertical edge's chroma must sit on its luma edge (H.264 chroma is left-sited).
//!
//! The ideal is computed here, independently of the compositor: sRGB -> CIELAB and
//! CIEDE2000 from their definitions, and edge positions from where left-sited chroma
//! samples are by definition (chroma sample i on luma column 2i).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use edge_compose::{Compositor, CompositorOptions, OverlayPlacement, RenderJob};
use edge_core::{ChromaSite, ColourMatrix, ColourRange, I420Frame};
use edge_media::{Encoder, EncoderConfig, Ingest, IngestConfig};

const BRAND_RED: [u8; 3] = [0xE4, 0x00, 0x2B];

struct Case {
    name: &'static str,
    width: u32,
    height: u32,
    /// ffmpeg options that tag (or do not tag) the clip.
    tags: &'static [&'static str],
    matrix: ColourMatrix,
    /// What ffprobe must read back from the node's output.
    vui_space: &'static str,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-colour-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .expect("ffmpeg/ffprobe runs (installed by setup)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A mid-grey clip (R'G'B' 128) with the case's tags.
fn make_clip(case: &Case, path: &Path) {
    let size = format!("color=c=0x808080:s={}x{}:r=30:d=1", case.width, case.height);
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", &size])
        .args(["-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "30"])
        .args(case.tags)
        .arg(path));
}

/// The first decoded frame of `path` through the node's ingest, and its format.
fn ingest_one(path: &Path) -> (I420Frame, edge_media::VideoFormat) {
    let (tx, rx) = mpsc::sync_channel(64);
    let ingest = Ingest::start(
        IngestConfig::new(format!("file://{}", path.display())),
        move |frame| {
            let _ = tx.try_send(frame);
        },
        |_| {},
    )
    .unwrap();
    let format = ingest.wait_first_frame(Duration::from_secs(20)).unwrap();
    let frame = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    ingest.stop();
    (frame, format)
}

/// Encodes `frames` copies of `data` with the node's encoder, returning the Annex B stream.
fn encode(config: EncoderConfig, frame: &edge_compose::ComposedFrame, frames: u64) -> Vec<u8> {
    let (tx, rx) = mpsc::channel();
    let encoder = Encoder::new(config, move |f| {
        let _ = tx.send(f.data);
    })
    .unwrap();
    for seq in 0..frames {
        let mut meta = frame.meta;
        meta.seq = seq;
        meta.pts_ns = seq * 33_333_333;
        encoder.push(frame.data.clone(), meta, seq == 0).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    encoder.finish(Duration::from_secs(10)).unwrap();
    rx.try_iter().flat_map(|b| b.to_vec()).collect()
}

/// ffprobe's reading of the stream's VUI: (color_space, color_range, chroma_location).
fn probe_vui(path: &Path) -> (String, String, String) {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=color_space,color_range,chroma_location",
            "-of",
            "default=nw=1",
        ])
        .arg(path));
    let text = String::from_utf8(out).unwrap();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_owned()
    };
    (
        field("color_space"),
        field("color_range"),
        field("chroma_location"),
    )
}

/// The first frame of `path` as RGB24, converted with the matrix and range its VUI names.
fn decode_rgb(path: &Path, space: &str, range: &str) -> Vec<u8> {
    let filter = format!(
        "scale=in_color_matrix={space}:in_range={range}:out_range=full:flags=accurate_rnd+full_chroma_int,format=rgb24"
    );
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-vf", &filter, "-f", "rawvideo", "-"]))
}

/// The first frame of `path` as raw I420, as coded.
fn decode_i420(path: &Path) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-",
        ]))
}

/// sRGB-encoded 8-bit R'G'B' -> CIELAB (D65).
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    let lin = rgb.map(|v| {
        let c = v / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let x = 0.4124564 * lin[0] + 0.3575761 * lin[1] + 0.1804375 * lin[2];
    let y = 0.2126729 * lin[0] + 0.7151522 * lin[1] + 0.0721750 * lin[2];
    let z = 0.0193339 * lin[0] + 0.1191920 * lin[1] + 0.9503041 * lin[2];
    let f = |t: f64| {
        if t > (6.0f64 / 29.0).powi(3) {
            t.cbrt()
        } else {
            t / (3.0 * (6.0f64 / 29.0).powi(2)) + 4.0 / 29.0
        }
    };
    let (fx, fy, fz) = (f(x / 0.95047), f(y), f(z / 1.08883));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIEDE2000 (Sharma, Wu, Dalal 2005), kL = kC = kH = 1.
fn delta_e2000(a: [f64; 3], b: [f64; 3]) -> f64 {
    use std::f64::consts::PI;
    let deg = |r: f64| r * 180.0 / PI;
    let rad = |d: f64| d * PI / 180.0;
    let c1 = a[1].hypot(a[2]);
    let c2 = b[1].hypot(b[2]);
    let c_bar = (c1 + c2) / 2.0;
    let g = 0.5 * (1.0 - (c_bar.powi(7) / (c_bar.powi(7) + 25f64.powi(7))).sqrt());
    let (a1, a2) = ((1.0 + g) * a[1], (1.0 + g) * b[1]);
    let (c1p, c2p) = (a1.hypot(a[2]), a2.hypot(b[2]));
    let hue = |ap: f64, bp: f64| {
        if ap == 0.0 && bp == 0.0 {
            0.0
        } else {
            deg(bp.atan2(ap)).rem_euclid(360.0)
        }
    };
    let (h1, h2) = (hue(a1, a[2]), hue(a2, b[2]));
    let dl = b[0] - a[0];
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else if (h2 - h1).abs() <= 180.0 {
        h2 - h1
    } else if h2 - h1 > 180.0 {
        h2 - h1 - 360.0
    } else {
        h2 - h1 + 360.0
    };
    let dh_big = 2.0 * (c1p * c2p).sqrt() * rad(dh / 2.0).sin();
    let l_bar = (a[0] + b[0]) / 2.0;
    let cp_bar = (c1p + c2p) / 2.0;
    let h_bar = if c1p * c2p == 0.0 {
        h1 + h2
    } else if (h1 - h2).abs() <= 180.0 {
        (h1 + h2) / 2.0
    } else if h1 + h2 < 360.0 {
        (h1 + h2 + 360.0) / 2.0
    } else {
        (h1 + h2 - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * rad(h_bar - 30.0).cos()
        + 0.24 * rad(2.0 * h_bar).cos()
        + 0.32 * rad(3.0 * h_bar + 6.0).cos()
        - 0.20 * rad(4.0 * h_bar - 63.0).cos();
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cp_bar.powi(7) / (cp_bar.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (l_bar - 50.0).powi(2) / (20.0 + (l_bar - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cp_bar;
    let sh = 1.0 + 0.015 * cp_bar * t;
    let rt = -rad(2.0 * d_theta).sin() * rc;
    ((dl / sl).powi(2) + (dc / sc).powi(2) + (dh_big / sh).powi(2) + rt * (dc / sc) * (dh_big / sh))
        .sqrt()
}

#[test]
fn delta_e2000_matches_sharmas_test_data() {
    // Pairs 1, 7 and 17 of Sharma, Wu and Dalal's published CIEDE2000 test data.
    let cases = [
        ([50.0, 2.6772, -79.7751], [50.0, 0.0, -82.7485], 2.0425),
        ([50.0, 0.0, 0.0], [50.0, -1.0, 2.0], 2.3669),
        ([50.0, 2.5, 0.0], [73.0, 25.0, -18.0], 27.1492),
    ];
    for (a, b, want) in cases {
        let got = delta_e2000(a, b);
        assert!((got - want).abs() < 1e-4, "{a:?} {b:?}: {got} vs {want}");
    }
}

/// Where along `values` (sampled at `positions`) the step from its first to its last value
/// crosses half way, by linear interpolation.
fn crossing(positions: &[f64], values: &[f64]) -> f64 {
    let (lo, hi) = (values[0], values[values.len() - 1]);
    let mid = (lo + hi) / 2.0;
    for k in 1..values.len() {
        let (a, b) = (values[k - 1] - mid, values[k] - mid);
        if a.signum() != b.signum() || b == 0.0 {
            let t = a / (a - b);
            return positions[k - 1] + t * (positions[k] - positions[k - 1]);
        }
    }
    panic!("no crossing in {values:?}");
}

fn check(case: &Case) {
    let dir = temp_dir(case.name);
    let clip = dir.join("source.mp4");
    make_clip(case, &clip);
    let (frame, format) = ingest_one(&clip);
    assert_eq!(
        format.colour.matrix, case.matrix,
        "{}: matrix read",
        case.name
    );
    assert_eq!(format.colour.range, ColourRange::Limited);
    assert_eq!(format.colour.chroma_site, ChromaSite::Left);

    let mut compositor = Compositor::new(CompositorOptions::default()).unwrap();
    compositor.set_source_colour(format.colour).unwrap();
    // An opaque brand-red block with its left edge on an even and on an odd column.
    let (w, h) = (96u32, 64u32);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|_| [BRAND_RED[0], BRAND_RED[1], BRAND_RED[2], 255])
        .collect();
    let red = compositor.load_overlay_rgba(w, h, &rgba).unwrap();
    let placements = [(64, 64), (225, 192)];
    let job = RenderJob::identity(
        frame.layout,
        placements
            .iter()
            .map(|&(x, y)| OverlayPlacement {
                overlay: red,
                x,
                y,
                opacity: 1.0,
            })
            .collect(),
    );
    let composed = compositor.compose(&frame, &[job]).unwrap().remove(0);

    // The same picture reduced 2:1 by the compositor: chroma must be sampled at its site
    // there too (the block edges land on x0 / 2).
    let half = edge_core::PlaneLayout::new(case.width / 2, case.height / 2).unwrap();
    let composed_source = I420Frame::new(composed.layout, composed.data.clone(), composed.meta)
        .expect("a composed frame is whole I420");
    let reduced = compositor
        .compose(
            &composed_source,
            &[RenderJob {
                output: half,
                roi: edge_compose::Roi::full(composed.layout),
                overlays: vec![],
            }],
        )
        .unwrap()
        .remove(0);

    let blocks: Vec<[f64; 4]> = placements
        .iter()
        .map(|&(x, y)| [f64::from(x), f64::from(y), f64::from(w), f64::from(h)])
        .collect();
    measure(case, "identity", &dir, &composed, format.colour, &blocks);
    let halved: Vec<[f64; 4]> = blocks.iter().map(|b| b.map(|v| v / 2.0)).collect();
    measure(case, "reduced 2:1", &dir, &reduced, format.colour, &halved);
}

/// Encodes `frame`, checks its VUI, the colour inside each block `[x, y, w, h]` and where
/// each block's left edge lands in luma and in chroma.
fn measure(
    case: &Case,
    what: &str,
    dir: &Path,
    frame: &edge_compose::ComposedFrame,
    colour: edge_core::VideoColour,
    blocks: &[[f64; 4]],
) {
    let (width, height) = (frame.layout.width, frame.layout.height);
    let config = EncoderConfig {
        encoder: Some("x264enc".into()),
        bitrate_kbps: 20_000,
        colour,
        ..EncoderConfig::for_format(width, height, 30)
    };
    let stream = dir.join(format!("{}.h264", what.replace([' ', ':'], "-")));
    std::fs::write(&stream, encode(config, frame, 10)).unwrap();
    let name = format!("{} {what}", case.name);

    let (space, range, site) = probe_vui(&stream);
    assert_eq!(space, case.vui_space, "{name}: VUI matrix");
    assert_eq!(range, "tv", "{name}: VUI range");
    assert_eq!(site, "left", "{name}: VUI chroma location");

    // Colour: the mean of each block's inside (4 px in from its edges), in CIELAB.
    let rgb = decode_rgb(&stream, &space, &range);
    let intended = lab(BRAND_RED.map(f64::from));
    for &[bx, by, bw, bh] in blocks {
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for y in (by + 4.0).ceil() as usize..(by + bh - 4.0) as usize {
            for x in (bx + 4.0).ceil() as usize..(bx + bw - 4.0) as usize {
                let i = (y * width as usize + x) * 3;
                for c in 0..3 {
                    sum[c] += f64::from(rgb[i + c]);
                }
                n += 1.0;
            }
        }
        let mean = sum.map(|s| s / n);
        let de = delta_e2000(intended, lab(mean));
        println!(
            "{name}: block at ({bx},{by}) decodes to RGB {mean:.1?}, ΔE2000 {de:.2} from #E4002B"
        );
        assert!(de <= 2.0, "{name}: ΔE2000 {de:.2} > 2");
    }

    // Chroma siting: along the rows through each block, where the Cr step crosses half way
    // (chroma sample i standing at luma pixel centre 2i + 0.5: left-sited) against where
    // the luma step does (pixel k's centre at k + 0.5). Both edges are at the block's x.
    let yuv = decode_i420(&stream);
    let (lw, cw) = (width as usize, width as usize / 2);
    let cr_plane = lw * height as usize * 5 / 4;
    for &[bx, by, _, bh] in blocks {
        let (mut luma_edge, mut chroma_edge, mut rows) = (0.0, 0.0, 0.0);
        let x0 = bx.round() as usize;
        for cy in (by / 2.0).ceil() as usize + 3..((by + bh) / 2.0) as usize - 3 {
            let ly = cy * 2;
            let lx: Vec<usize> = (x0 - 6..x0 + 6).collect();
            let lpos: Vec<f64> = lx.iter().map(|&x| x as f64 + 0.5).collect();
            let lval: Vec<f64> = lx.iter().map(|&x| f64::from(yuv[ly * lw + x])).collect();
            let cx: Vec<usize> = (x0 / 2 - 3..x0 / 2 + 4).collect();
            let cpos: Vec<f64> = cx.iter().map(|&i| 2.0 * i as f64 + 0.5).collect();
            let cval: Vec<f64> = cx
                .iter()
                .map(|&i| f64::from(yuv[cr_plane + cy * cw + i]))
                .collect();
            luma_edge += crossing(&lpos, &lval);
            chroma_edge += crossing(&cpos, &cval);
            rows += 1.0;
        }
        let (luma_edge, chroma_edge) = (luma_edge / rows, chroma_edge / rows);
        println!(
            "{name}: edge at x={bx}: luma crosses at {luma_edge:.3}, chroma at {chroma_edge:.3} (shift {:+.3} px)",
            chroma_edge - luma_edge
        );
        assert!((luma_edge - bx).abs() < 0.1, "{name}: luma edge moved");
        assert!(
            (chroma_edge - luma_edge).abs() <= 0.25,
            "{name}: chroma edge {chroma_edge:.3} is {:+.3} px from the luma edge",
            chroma_edge - luma_edge
        );
    }
}

const BT709_HD: Case = Case {
    name: "bt709",
    width: 1280,
    height: 720,
    tags: &[
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "tv",
    ],
    matrix: ColourMatrix::Bt709,
    vui_space: "bt709",
};

const BT601_SD: Case = Case {
    name: "bt601",
    width: 640,
    height: 480,
    tags: &[
        "-colorspace",
        "smpte170m",
        "-color_primaries",
        "smpte170m",
        "-color_trc",
        "smpte170m",
        "-color_range",
        "tv",
    ],
    matrix: ColourMatrix::Bt601,
    vui_space: "smpte170m",
};

#[test]
fn bt709_source_keeps_brand_red() {
    check(&BT709_HD);
}

#[test]
fn bt601_source_keeps_brand_red() {
    check(&BT601_SD);
}

/// An HD stream that names no matrix is BT.709, as players assume; the node's output then
/// says so.
#[test]
fn unsigned_hd_source_is_taken_as_bt709() {
    check(&Case {
        name: "unsigned-hd",
        width: 1280,
        height: 720,
        tags: &[],
        matrix: ColourMatrix::Bt709,
        vui_space: "bt709",
    });
}

/// An upstream that changes its colour description mid-stream (BT.601 SD, then BT.709 HD, a
/// new SPS at a resolution change, as an origin switching cameras sends): every decoded frame
/// says which it is, the compositor converts the overlay again when the colour changes, and
/// the encoder re-tags its stream from the first frame in the new colour. Both halves decode
/// to brand red within ΔE2000 2 with the matrix their own VUI names.
#[test]
fn a_colour_change_mid_stream_is_followed_by_overlays_and_vui() {
    let dir = temp_dir("change");
    // Two clips, the second's timestamps following the first's, joined as one transport stream.
    let mut joined = Vec::new();
    for (case, offset_s) in [(&BT601_SD, "0"), (&BT709_HD, "1")] {
        let part = dir.join(format!("{}.ts", case.name));
        let size = format!("color=c=0x808080:s={}x{}:r=30:d=1", case.width, case.height);
        run(Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", &size])
            .args([
                "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "30", "-bf", "0",
            ])
            .args(case.tags)
            .args(["-output_ts_offset", offset_s])
            .arg(&part));
        joined.extend(std::fs::read(&part).unwrap());
    }
    let clip = dir.join("sd-then-hd.ts");
    std::fs::write(&clip, joined).unwrap();

    let (tx, rx) = mpsc::sync_channel(128);
    let ingest = Ingest::start(
        IngestConfig::new(format!("file://{}", clip.display())),
        move |frame| {
            let _ = tx.try_send(frame);
        },
        |_| {},
    )
    .unwrap();
    let mut frames: Vec<I420Frame> = Vec::new();
    while let Ok(frame) =
        rx.recv_timeout(Duration::from_secs(if frames.is_empty() { 20 } else { 2 }))
    {
        frames.push(frame);
        if frames.len() == 60 {
            break;
        }
    }
    ingest.stop();
    let colours: Vec<_> = frames.iter().map(|f| f.colour).collect();
    let first_hd = frames
        .iter()
        .position(|f| f.layout.width == BT709_HD.width)
        .expect("frames of the HD part");
    assert!(first_hd >= 20, "SD frames first: {first_hd}");
    for (i, (frame, colour)) in frames.iter().zip(&colours).enumerate() {
        let matrix = colour
            .expect("every ingested frame carries its colour")
            .matrix;
        let expected = if i < first_hd {
            ColourMatrix::Bt601
        } else {
            ColourMatrix::Bt709
        };
        assert_eq!(
            matrix, expected,
            "frame {i} ({}x{})",
            frame.layout.width, frame.layout.height
        );
    }

    // The node's path: one 640x360 rendering with a brand-red block, composed and encoded
    // frame after frame; nobody tells the compositor the colour, the frames do.
    let output = edge_core::PlaneLayout::new(640, 360).unwrap();
    let mut compositor = Compositor::new(CompositorOptions::default()).unwrap();
    let (w, h) = (96u32, 64u32);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|_| [BRAND_RED[0], BRAND_RED[1], BRAND_RED[2], 255])
        .collect();
    let red = compositor.load_overlay_rgba(w, h, &rgba).unwrap();
    let (tx, encoded) = mpsc::channel();
    let mut colour = colours[0].unwrap();
    let mut encoder = Encoder::new(
        EncoderConfig {
            encoder: Some("x264enc".into()),
            bitrate_kbps: 20_000,
            colour,
            ..EncoderConfig::for_format(output.width, output.height, 30)
        },
        move |f| {
            let _ = tx.send(f.data);
        },
    )
    .unwrap();
    for (seq, frame) in frames.iter().enumerate() {
        let job = RenderJob {
            output,
            roi: edge_compose::Roi::full(frame.layout),
            overlays: vec![OverlayPlacement {
                overlay: red,
                x: 64,
                y: 64,
                opacity: 1.0,
            }],
        };
        let composed = compositor.compose(frame, &[job]).unwrap().remove(0);
        assert_eq!(compositor.source_colour(), frame.colour.unwrap());
        if let Some(now) = frame.colour.filter(|c| *c != colour) {
            colour = now;
            encoder.set_colour(now).unwrap();
        }
        let mut meta = composed.meta;
        meta.seq = seq as u64;
        meta.pts_ns = seq as u64 * 33_333_333;
        encoder.push(composed.data.clone(), meta, seq == 0).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    encoder.finish(Duration::from_secs(10)).unwrap();
    let stream = dir.join("rendering.h264");
    std::fs::write(
        &stream,
        encoded
            .try_iter()
            .flat_map(|b| b.to_vec())
            .collect::<Vec<u8>>(),
    )
    .unwrap();

    // The VUI of every decoded frame: SD's matrix, then HD's from the change on.
    let probed = String::from_utf8(run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["frame=color_space", "-of", "csv=p=0"])
        .arg(&stream)))
    .unwrap();
    let spaces: Vec<&str> = probed
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(spaces.len(), frames.len(), "every frame encoded: {probed}");
    for (i, space) in spaces.iter().enumerate() {
        let expected = if i < first_hd { "smpte170m" } else { "bt709" };
        assert_eq!(*space, expected, "frame {i}'s VUI");
    }

    // The block's colour in a frame of each half, decoded with that half's matrix.
    let intended = lab(BRAND_RED.map(f64::from));
    for (index, space) in [(first_hd / 2, "smpte170m"), (frames.len() - 5, "bt709")] {
        let filter = format!(
            "select=eq(n\\,{index}),scale=in_color_matrix={space}:in_range=tv:out_range=full:flags=accurate_rnd+full_chroma_int,format=rgb24"
        );
        let rgb = run(Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(&stream)
            .args(["-vf", &filter, "-frames:v", "1", "-f", "rawvideo", "-"]));
        let mut sum = [0.0; 3];
        let mut n = 0.0;
        for y in 68..124usize {
            for x in 68..156usize {
                let i = (y * output.width as usize + x) * 3;
                for c in 0..3 {
                    sum[c] += f64::from(rgb[i + c]);
                }
                n += 1.0;
            }
        }
        let mean = sum.map(|s| s / n);
        let de = delta_e2000(intended, lab(mean));
        println!("frame {index} ({space}): the block decodes to RGB {mean:.1?}, ΔE2000 {de:.2} from #E4002B");
        assert!(de <= 2.0, "frame {index} ({space}): ΔE2000 {de:.2} > 2");
    }
}
