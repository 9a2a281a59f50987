//! Validation and planning of render jobs: which path a job takes and where each overlay lands
//! after clipping. Pure, shared by the GPU compositor and the CPU reference so both draw the
//! same rectangles.

use edge_core::PlaneLayout;

use crate::error::ComposeError;
use crate::job::{OverlayId, RenderJob, Roi};

/// Largest accepted frame side. Far above any 8K stream, and small enough that every
/// workgroup count and word offset of a frame stays well inside u32 and device limits.
pub const MAX_FRAME_SIDE_PX: u32 = 16_384;

/// How one job is produced.
#[derive(Clone, Debug, PartialEq)]
pub enum JobPath {
    /// Identity and no visible overlay: the source bytes are the answer, no GPU work at all.
    Passthrough,
    /// Identity with overlays: copy the source planes, blend only the overlay rectangles.
    CopyThenBlend,
    /// Crop/scale the ROI into the output (area average when reducing, bilinear when
    /// enlarging: `scale_i420.wgsl`), then blend.
    ScaleThenBlend,
}

/// One overlay of a job, clipped to the output frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlendPlan {
    pub overlay: OverlayId,
    pub overlay_width: u32,
    pub overlay_height: u32,
    /// Unclipped top-left in output luma pixels.
    pub origin_x: i32,
    pub origin_y: i32,
    /// Visible rectangle in output luma pixels: x0, y0, x1, y1 (exclusive), never empty.
    pub clip: [u32; 4],
    /// In 0..=1, never 0.
    pub opacity: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobPlan {
    pub path: JobPath,
    pub output: PlaneLayout,
    pub roi: Roi,
    pub blends: Vec<BlendPlan>,
}

/// Checks a frame size coming from outside (the fields of `PlaneLayout` are public, so a
/// layout is not trusted to have gone through `PlaneLayout::new`).
pub fn checked_layout(layout: PlaneLayout) -> Result<PlaneLayout, &'static str> {
    let checked = PlaneLayout::new(layout.width, layout.height)
        .map_err(|_| "I420 needs even, non-zero dimensions")?;
    if checked.width > MAX_FRAME_SIDE_PX || checked.height > MAX_FRAME_SIDE_PX {
        return Err("larger than 16384 pixels on a side");
    }
    Ok(checked)
}

/// Plans one job against a source of size `source`. `overlay_size` answers the size of an
/// uploaded overlay, `None` when the id is unknown.
pub fn plan_job(
    source: PlaneLayout,
    job: &RenderJob,
    overlay_size: impl Fn(OverlayId) -> Option<(u32, u32)>,
) -> Result<JobPlan, ComposeError> {
    let output = checked_layout(job.output).map_err(|reason| ComposeError::InvalidOutput {
        width: job.output.width,
        height: job.output.height,
        reason,
    })?;
    check_roi(source, job.roi)?;

    let mut blends = Vec::with_capacity(job.overlays.len());
    for placement in &job.overlays {
        let (overlay_width, overlay_height) = overlay_size(placement.overlay)
            .ok_or(ComposeError::UnknownOverlay(placement.overlay))?;
        if !placement.opacity.is_finite() {
            return Err(ComposeError::InvalidOpacity(placement.opacity));
        }
        let opacity = placement.opacity.clamp(0.0, 1.0);
        let Some(clip) = clip_rect(
            output,
            placement.x,
            placement.y,
            overlay_width,
            overlay_height,
        ) else {
            continue;
        };
        if opacity == 0.0 {
            continue;
        }
        blends.push(BlendPlan {
            overlay: placement.overlay,
            overlay_width,
            overlay_height,
            origin_x: placement.x,
            origin_y: placement.y,
            clip,
            opacity,
        });
    }

    let identity = job.roi == Roi::full(source) && output == source;
    let path = match (identity, blends.is_empty()) {
        (true, true) => JobPath::Passthrough,
        (true, false) => JobPath::CopyThenBlend,
        (false, _) => JobPath::ScaleThenBlend,
    };
    Ok(JobPlan {
        path,
        output,
        roi: job.roi,
        blends,
    })
}

/// Scaled jobs of one frame that show the same ROI at the same output size: the scale runs
/// once for all of them (a 4K source costs one reduction for every full-frame 720p rendering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleGroup {
    /// The job the scale writes into: the first without overlays if there is one, so that its
    /// picture is the bare scale that `shares` take as it is; else the first.
    pub base: usize,
    /// Jobs with overlays (besides the base): each starts from a copy of the base's scale.
    pub copies: Vec<usize>,
    /// Jobs without overlays (besides the base): the base's picture is theirs.
    pub shares: Vec<usize>,
}

/// Groups the scaled jobs among `jobs` (indices into `plans`, in order) by (ROI, output size).
/// Groups and their members come in job order.
pub fn scale_groups(plans: &[JobPlan], jobs: &[usize]) -> Vec<ScaleGroup> {
    let mut members: Vec<Vec<usize>> = Vec::new();
    for &i in jobs {
        if plans[i].path != JobPath::ScaleThenBlend {
            continue;
        }
        let same = |group: &Vec<usize>| {
            let first = &plans[group[0]];
            first.roi == plans[i].roi && first.output == plans[i].output
        };
        match members.iter_mut().find(|g| same(g)) {
            Some(group) => group.push(i),
            None => members.push(vec![i]),
        }
    }
    members
        .into_iter()
        .map(|group| {
            let bare = |&i: &usize| plans[i].blends.is_empty();
            let base = group.iter().copied().find(bare).unwrap_or(group[0]);
            let (shares, copies) = group
                .into_iter()
                .filter(|&i| i != base)
                .partition(|i| bare(i));
            ScaleGroup {
                base,
                copies,
                shares,
            }
        })
        .collect()
}

fn check_roi(source: PlaneLayout, roi: Roi) -> Result<(), ComposeError> {
    let inside = [roi.x, roi.y, roi.width, roi.height]
        .iter()
        .all(|v| v.is_finite())
        && roi.x >= 0.0
        && roi.y >= 0.0
        && roi.width > 0.0
        && roi.height > 0.0
        && roi.x + roi.width <= source.width as f32
        && roi.y + roi.height <= source.height as f32;
    if inside {
        Ok(())
    } else {
        Err(ComposeError::InvalidRoi {
            roi,
            source_width: source.width,
            source_height: source.height,
        })
    }
}

/// The part of a `width` x `height` rectangle at (x, y) inside the frame, or `None` when
/// nothing of it is visible. Computed in i64 so that no placement can overflow.
pub fn clip_rect(frame: PlaneLayout, x: i32, y: i32, width: u32, height: u32) -> Option<[u32; 4]> {
    let x0 = i64::from(x).max(0);
    let y0 = i64::from(y).max(0);
    let x1 = (i64::from(x) + i64::from(width)).min(i64::from(frame.width));
    let y1 = (i64::from(y) + i64::from(height)).min(i64::from(frame.height));
    if x0 >= x1 || y0 >= y1 {
        return None;
    }
    // All four lie in 0..=frame size, which fits u32.
    Some([x0 as u32, y0 as u32, x1 as u32, y1 as u32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::OverlayPlacement;

    fn layout(w: u32, h: u32) -> PlaneLayout {
        PlaneLayout::new(w, h).unwrap()
    }

    fn placement(x: i32, y: i32, opacity: f32) -> OverlayPlacement {
        OverlayPlacement {
            overlay: OverlayId(1),
            x,
            y,
            opacity,
        }
    }

    fn known(id: OverlayId) -> Option<(u32, u32)> {
        (id == OverlayId(1)).then_some((10, 6))
    }

    #[test]
    fn clipping_at_every_edge() {
        let f = layout(20, 10);
        assert_eq!(clip_rect(f, 3, 1, 10, 6), Some([3, 1, 13, 7]));
        assert_eq!(clip_rect(f, -4, -2, 10, 6), Some([0, 0, 6, 4]));
        assert_eq!(clip_rect(f, 15, 7, 10, 6), Some([15, 7, 20, 10]));
        assert_eq!(clip_rect(f, 20, 0, 10, 6), None);
        assert_eq!(clip_rect(f, -10, 0, 10, 6), None);
        assert_eq!(clip_rect(f, i32::MAX, i32::MIN, u32::MAX, u32::MAX), None);
        assert_eq!(
            clip_rect(f, i32::MIN, i32::MIN, u32::MAX, u32::MAX),
            Some([0, 0, 20, 10])
        );
    }

    #[test]
    fn paths() {
        let src = layout(20, 10);
        let identity = RenderJob::identity(src, vec![]);
        assert_eq!(
            plan_job(src, &identity, known).unwrap().path,
            JobPath::Passthrough
        );

        let with_overlay = RenderJob::identity(src, vec![placement(1, 1, 0.5)]);
        assert_eq!(
            plan_job(src, &with_overlay, known).unwrap().path,
            JobPath::CopyThenBlend
        );

        // Invisible overlays (off-frame, opacity 0) do not force a GPU pass.
        let invisible =
            RenderJob::identity(src, vec![placement(100, 1, 1.0), placement(1, 1, 0.0)]);
        assert_eq!(
            plan_job(src, &invisible, known).unwrap().path,
            JobPath::Passthrough
        );

        let zoom = RenderJob {
            output: src,
            roi: Roi {
                x: 5.0,
                y: 2.5,
                width: 10.0,
                height: 5.0,
            },
            overlays: vec![],
        };
        assert_eq!(
            plan_job(src, &zoom, known).unwrap().path,
            JobPath::ScaleThenBlend
        );
        let downscale = RenderJob {
            output: layout(10, 6),
            roi: Roi::full(src),
            overlays: vec![],
        };
        assert_eq!(
            plan_job(src, &downscale, known).unwrap().path,
            JobPath::ScaleThenBlend
        );
    }

    #[test]
    fn bad_jobs_are_errors() {
        let src = layout(20, 10);
        let roi = |x, y, width, height| RenderJob {
            output: src,
            roi: Roi {
                x,
                y,
                width,
                height,
            },
            overlays: vec![],
        };
        for job in [
            roi(0.0, 0.0, 21.0, 10.0),
            roi(-1.0, 0.0, 5.0, 5.0),
            roi(0.0, 0.0, 0.0, 5.0),
            roi(f32::NAN, 0.0, 5.0, 5.0),
            roi(0.0, 0.0, f32::INFINITY, 5.0),
            roi(15.5, 0.0, 5.0, 5.0),
        ] {
            assert!(matches!(
                plan_job(src, &job, known),
                Err(ComposeError::InvalidRoi { .. })
            ));
        }
        for (w, h) in [(0, 10), (20, 0), (21, 10), (20_000, 10)] {
            let job = RenderJob {
                output: PlaneLayout {
                    width: w,
                    height: h,
                },
                roi: Roi::full(src),
                overlays: vec![],
            };
            assert!(matches!(
                plan_job(src, &job, known),
                Err(ComposeError::InvalidOutput { .. })
            ));
        }
        let unknown = RenderJob::identity(
            src,
            vec![OverlayPlacement {
                overlay: OverlayId(7),
                x: 0,
                y: 0,
                opacity: 1.0,
            }],
        );
        assert!(matches!(
            plan_job(src, &unknown, known),
            Err(ComposeError::UnknownOverlay(OverlayId(7)))
        ));
        let nan = RenderJob::identity(src, vec![placement(0, 0, f32::NAN)]);
        assert!(matches!(
            plan_job(src, &nan, known),
            Err(ComposeError::InvalidOpacity(_))
        ));
    }

    #[test]
    fn scaled_jobs_with_the_same_roi_and_size_share_one_scale() {
        let src = layout(40, 20);
        let half = Roi {
            x: 10.0,
            y: 5.0,
            width: 20.0,
            height: 10.0,
        };
        let job = |output, roi, overlays: Vec<OverlayPlacement>| RenderJob {
            output,
            roi,
            overlays,
        };
        let small = layout(20, 10);
        let jobs = [
            job(small, Roi::full(src), vec![placement(1, 1, 1.0)]),
            RenderJob::identity(src, vec![]),
            job(small, Roi::full(src), vec![]),
            job(small, half, vec![]),
            job(small, Roi::full(src), vec![placement(2, 2, 0.5)]),
            job(small, Roi::full(src), vec![]),
            job(layout(10, 6), Roi::full(src), vec![]),
            job(small, half, vec![placement(3, 3, 1.0)]),
        ];
        let plans: Vec<JobPlan> = jobs
            .iter()
            .map(|j| plan_job(src, j, known).unwrap())
            .collect();
        let all: Vec<usize> = (0..jobs.len()).collect();
        let group = |base, copies: &[usize], shares: &[usize]| ScaleGroup {
            base,
            copies: copies.to_vec(),
            shares: shares.to_vec(),
        };
        assert_eq!(
            scale_groups(&plans, &all),
            [
                // The bare job 2 is the base: job 5 takes its picture, 0 and 4 copy it.
                group(2, &[0, 4], &[5]),
                group(3, &[7], &[]),
                group(6, &[], &[]),
            ]
        );
        // Only jobs with overlays: the first is the base.
        assert_eq!(scale_groups(&plans, &[4, 0]), [group(4, &[0], &[])]);
    }

    #[test]
    fn opacity_is_clamped() {
        let src = layout(20, 10);
        let job = RenderJob::identity(src, vec![placement(0, 0, 3.0)]);
        assert_eq!(plan_job(src, &job, known).unwrap().blends[0].opacity, 1.0);
    }
}
