//! Bad input is an error, never a panic, and the compositor keeps working afterwards.

mod common;

use bytes::Bytes;
use common::{compositor, solid_rgba, synthetic_frame};
use edge_compose::{ComposeError, OverlayPlacement, RenderJob, Roi};
use edge_core::{I420Frame, PlaneLayout};

#[test]
fn broken_png_is_an_error() {
    let mut compositor = compositor();
    let good = common::encode_png(8, 8, png::ColorType::Rgba, &[9; 256]);
    for bytes in [
        &[][..],
        b"\x89PNG\r\n\x1a\n garbage",
        &good[..good.len() - 30],
    ] {
        assert!(matches!(
            compositor.load_overlay_png(bytes),
            Err(ComposeError::Png(_))
        ));
    }
    assert!(compositor.load_overlay_png(&good).is_ok());
}

#[test]
fn bad_overlay_rgba_is_an_error() {
    let mut compositor = compositor();
    assert!(matches!(
        compositor.load_overlay_rgba(4, 4, &[0; 10]),
        Err(ComposeError::InvalidOverlay(_))
    ));
    assert!(matches!(
        compositor.load_overlay_rgba(0, 4, &[]),
        Err(ComposeError::InvalidOverlay(_))
    ));
    let id = compositor
        .load_overlay_rgba(2, 2, &solid_rgba(2, 2, [1, 2, 3, 4]))
        .unwrap();
    assert!(compositor.replace_overlay_rgba(id, 2, 2, &[0; 3]).is_err());
    compositor.remove_overlay(id).unwrap();
    assert!(matches!(
        compositor.replace_overlay_rgba(id, 2, 2, &[0; 16]),
        Err(ComposeError::UnknownOverlay(_))
    ));
}

#[test]
fn bad_jobs_and_frames_are_errors_and_the_compositor_recovers() {
    let mut compositor = compositor();
    let source = synthetic_frame(64, 48, 1);
    let layout = source.layout;
    let roi_job = |x, y, width, height| RenderJob {
        output: layout,
        roi: Roi {
            x,
            y,
            width,
            height,
        },
        overlays: vec![],
    };
    for job in [
        roi_job(0.0, 0.0, 65.0, 48.0),
        roi_job(10.0, 10.0, 60.0, 10.0),
        roi_job(-0.5, 0.0, 10.0, 10.0),
        roi_job(0.0, 0.0, 0.0, 10.0),
        roi_job(f32::NAN, 0.0, 10.0, 10.0),
    ] {
        assert!(matches!(
            compositor.compose(&source, &[job]),
            Err(ComposeError::InvalidRoi { .. })
        ));
    }
    for (width, height) in [(0, 48), (64, 0), (63, 48), (100_000, 2)] {
        let job = RenderJob {
            output: PlaneLayout { width, height },
            roi: Roi::full(layout),
            overlays: vec![],
        };
        assert!(matches!(
            compositor.compose(&source, &[job]),
            Err(ComposeError::InvalidOutput { .. })
        ));
    }
    let overlay = compositor
        .load_overlay_rgba(2, 2, &solid_rgba(2, 2, [1, 2, 3, 255]))
        .unwrap();
    let placed = |opacity| {
        RenderJob::identity(
            layout,
            vec![OverlayPlacement {
                overlay,
                x: 0,
                y: 0,
                opacity,
            }],
        )
    };
    assert!(matches!(
        compositor.compose(&source, &[placed(f32::INFINITY)]),
        Err(ComposeError::InvalidOpacity(_))
    ));
    compositor.remove_overlay(overlay).unwrap();
    assert!(matches!(
        compositor.compose(&source, &[placed(1.0)]),
        Err(ComposeError::UnknownOverlay(_))
    ));

    // A frame whose fields disagree (the fields are public).
    let short = I420Frame {
        layout,
        data: Bytes::from(vec![0; 10]),
        meta: source.meta,
        colour: None,
    };
    assert!(matches!(
        compositor.compose(&short, &[RenderJob::identity(layout, vec![])]),
        Err(ComposeError::InvalidSource(_))
    ));
    let odd = I420Frame {
        layout: PlaneLayout {
            width: 3,
            height: 2,
        },
        data: Bytes::from(vec![0; 8]),
        meta: source.meta,
        colour: None,
    };
    assert!(compositor.compose(&odd, &[]).is_err());

    // Still works, and no job means no frames.
    assert!(compositor.compose(&source, &[]).unwrap().is_empty());
    let zoom = roi_job(8.0, 8.0, 32.0, 24.0);
    assert_eq!(compositor.compose(&source, &[zoom]).unwrap().len(), 1);
}
