//! A picture for a person to look at: the astronaut (a real photo, converted to I420 on the
//! CPU), zoomed 1.6x with a semi-transparent card overlay (an alpha gradient, a border and a
//! solid badge) clipped at the bottom-left corner, plus a second overlay at an odd position.
//! Written to `target/compose-snapshot.png`, and checked against the CPU reference.

mod common;

use std::path::PathBuf;

use common::{compositor, encode_png, i420_to_rgb, max_diff_per_plane, rgb_to_i420};
use edge_compose::{cpu_reference, decode_png_rgba, OverlayPlacement, RenderJob, Roi};
use edge_core::PlaneLayout;

fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 240x100 card: alpha ramps from 40% to 100% left to right, a 4-pixel opaque white border,
/// an opaque red badge on the right.
fn card_png() -> Vec<u8> {
    let (w, h) = (240u32, 100u32);
    let mut rgba = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let border = x < 4 || y < 4 || x >= w - 4 || y >= h - 4;
            let badge = (170..220).contains(&x) && (30..70).contains(&y);
            let pixel = if border {
                [255, 255, 255, 255]
            } else if badge {
                [230, 20, 30, 255]
            } else {
                [20, 60, 200, (102 + 153 * x / (w - 1)) as u8]
            };
            rgba.extend_from_slice(&pixel);
        }
    }
    encode_png(w, h, png::ColorType::Rgba, &rgba)
}

#[test]
fn astronaut_snapshot_with_overlays() {
    let asset = workspace_dir().join(".cache/assets/astronaut.png");
    let Ok(png_bytes) = std::fs::read(&asset) else {
        panic!("{} missing (fetched by setup)", asset.display());
    };
    let (width, height, rgba) = decode_png_rgba(&png_bytes).unwrap();
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let source = rgb_to_i420(width & !1, height & !1, &rgb, 1);

    let mut compositor = compositor();
    let card = compositor.load_overlay_png(&card_png()).unwrap();
    let dot = compositor
        .load_overlay_rgba(31, 31, &common::ramp_rgba(31, 31))
        .unwrap();
    let output = PlaneLayout::new(480, 320).unwrap();
    let job = RenderJob {
        output,
        roi: Roi {
            x: 110.0,
            y: 20.0,
            width: 300.0,
            height: 200.0,
        },
        overlays: vec![
            OverlayPlacement {
                overlay: card,
                x: -21,
                y: output.height as i32 - 77,
                opacity: 0.9,
            },
            OverlayPlacement {
                overlay: dot,
                x: 401,
                y: 17,
                opacity: 1.0,
            },
        ],
    };
    let frames = compositor
        .compose(&source, std::slice::from_ref(&job))
        .unwrap();
    let frame = &frames[0];
    let expected = cpu_reference::compose(
        &source,
        &job,
        compositor.source_colour().chroma_site,
        |id| compositor.overlay_image(id),
    )
    .unwrap();
    let diff = max_diff_per_plane(output, &frame.data, &expected);
    assert!(diff.iter().all(|&d| d <= 2), "max diff {diff:?}");

    let rgb = i420_to_rgb(output, &frame.data);
    let path = workspace_dir().join("target/compose-snapshot.png");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        encode_png(output.width, output.height, png::ColorType::Rgb, &rgb),
    )
    .unwrap();
    eprintln!("snapshot written to {} (max diff {diff:?})", path.display());
    // The card's top border is opaque white at 90% opacity over the picture: bright. (Its
    // left and bottom borders are clipped off.)
    let border_px = ((output.height - 77 + 2) * output.width + 50) as usize * 3;
    assert!(
        rgb[border_px..border_px + 3].iter().all(|&c| c > 200),
        "border not white"
    );
    // The badge is red-dominant.
    let badge_px = ((output.height - 77 + 50) * output.width + (-21 + 190) as u32) as usize * 3;
    let [r, g, b] = [rgb[badge_px], rgb[badge_px + 1], rgb[badge_px + 2]];
    assert!(r > 150 && g < 90 && b < 90, "badge colour {r},{g},{b}");
}
