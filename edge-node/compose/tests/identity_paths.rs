//! The two ways an identity job (source size, overlays only) is drawn: on the device, and on
//! the CPU when the adapter is the CPU. Both must give the reference picture, and
//! `compose_each` must hand every job out exactly once, device-free jobs first.

mod common;

use common::{max_diff_per_plane, ramp_rgba, solid_rgba, synthetic_frame};
use edge_compose::{cpu_reference, Compositor, CompositorOptions, OverlayPlacement, RenderJob};
use edge_core::PlaneLayout;

/// One multiply-add per sample: the device may round the last f32 bit differently.
const BLEND_TOLERANCE: u8 = 1;

fn compositor(identity_on_cpu: bool) -> Compositor {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("edge-compose-test-runtime");
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
    Compositor::new(CompositorOptions {
        identity_on_cpu: Some(identity_on_cpu),
        ..CompositorOptions::default()
    })
    .expect("a Vulkan or GL adapter (lavapipe/llvmpipe at least) is installed")
}

/// Identity jobs with overlays at odd offsets, partly off-frame, translucent and stacked,
/// then a scaled job, so one frame mixes both paths.
fn jobs(compositor: &mut Compositor, source: PlaneLayout) -> Vec<RenderJob> {
    let ramp = compositor
        .load_overlay_rgba(61, 37, &ramp_rgba(61, 37))
        .unwrap();
    let card = compositor
        .load_overlay_rgba(40, 24, &solid_rgba(40, 24, [250, 200, 20, 180]))
        .unwrap();
    let at = |overlay, x, y, opacity| OverlayPlacement {
        overlay,
        x,
        y,
        opacity,
    };
    vec![
        RenderJob::identity(source, vec![at(ramp, 3, 5, 1.0)]),
        RenderJob::identity(source, vec![at(ramp, -7, -3, 0.7), at(card, 150, 90, 1.0)]),
        RenderJob {
            output: PlaneLayout::new(96, 54).unwrap(),
            roi: edge_compose::Roi::full(source),
            overlays: vec![at(card, 10, 10, 1.0)],
        },
        RenderJob::identity(source, vec![at(card, 171, 101, 0.5), at(ramp, 20, 21, 1.0)]),
        RenderJob::identity(source, Vec::new()),
    ]
}

#[test]
fn identity_jobs_match_the_reference_on_the_device_and_on_the_cpu() {
    let source = synthetic_frame(192, 108, 7);
    let mut outputs = Vec::new();
    for on_cpu in [false, true] {
        let mut compositor = compositor(on_cpu);
        let jobs = jobs(&mut compositor, source.layout);
        let frames = compositor.compose(&source, &jobs).unwrap();
        for (i, (job, frame)) in jobs.iter().zip(&frames).enumerate() {
            if job.output != source.layout {
                continue; // the scaled job is the golden tests' subject
            }
            let expected = cpu_reference::compose(
                &source,
                job,
                compositor.source_colour().chroma_site,
                |id| compositor.overlay_image(id),
            )
            .unwrap();
            let diff = max_diff_per_plane(job.output, &frame.data, &expected);
            assert!(
                diff.iter().all(|&d| d <= BLEND_TOLERANCE),
                "identity job {i}, on the {}: max diff {diff:?}",
                if on_cpu { "CPU" } else { "device" }
            );
        }
        outputs.push(frames);
    }
    for (i, (device, cpu)) in outputs[0].iter().zip(&outputs[1]).enumerate() {
        let diff = max_diff_per_plane(device.layout, &device.data, &cpu.data);
        assert!(
            diff.iter().all(|&d| d <= BLEND_TOLERANCE),
            "job {i}: the two paths differ by {diff:?}"
        );
    }
}

#[test]
fn compose_each_hands_out_every_job_once_device_free_jobs_first() {
    let source = synthetic_frame(192, 108, 8);
    let mut compositor = compositor(true);
    let jobs = jobs(&mut compositor, source.layout);
    let mut order = Vec::new();
    compositor
        .compose_each(&source, &jobs, |index, frame| {
            assert_eq!(frame.layout, jobs[index].output);
            assert_eq!(frame.meta, source.meta);
            order.push(index);
        })
        .unwrap();
    assert_eq!(
        order,
        vec![0, 1, 3, 4, 2],
        "identity and passthrough jobs in job order, then the scaled one"
    );
}
