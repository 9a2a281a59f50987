//! Placement on the real path: the live test show decoded by the ingest (15 fps, so a loaded
//! CI machine keeps up), CenterFace on every 3rd frame (the worker's 200 ms cadence), the
//! render groups composing every rendition on the GPU (lavapipe here). After the first second,
//! at every rendition: an `avoid = "faces"` overlay touches the detected face only in short
//! spells (the host walks into it, see [`assert_layout_holds`]), no overlay comes to rest on
//! another, and every overlay covers the same share of the frame as at 720p (to a
//! pixel of rounding). Landscape and portrait shows.

use super::*;

/// Frames composed per show; the first second is left out (overlays settling from their
/// anchors).
const FRAMES: u32 = 90;
const SETTLING: u32 = 15;

/// The longest spell, in frames (15 fps), an overlay that avoids faces may spend on the face:
/// the smoother's dwell (400 ms) and its glide off.
const MAX_COVERED_FRAMES: usize = 12;
/// The share of placements in which an overlay that avoids faces may touch the face (an idle
/// machine shows 0-1%, a loaded one up to 1.3%).
const MAX_COVERED_SHARE: f64 = 0.05;

/// A face covered: frame, rendition lines, overlay, its place, the face.
type Covered = (u32, u32, String, Rect, Rect);

/// An overlay's size off its 720p share: rendition lines, overlay, size at 720p, size there.
type WrongShare = (u32, String, (u32, u32), (u32, u32));

/// What one show's run found wrong, and how much it checked.
#[derive(Default)]
struct Findings {
    face_runs: usize,
    with_face: usize,
    /// Placements of overlays that avoid faces, checked against the face.
    checked: usize,
    covered: Vec<Covered>,
    /// Overlays at rest on another: frame, rendition lines, the two ids.
    overlapping: Vec<(u32, u32, String, String)>,
    /// Overlay sizes compared with their size at 720p.
    compared: usize,
    wrong_share: Vec<WrongShare>,
    /// Times an overlay passed over another on its way between two spots.
    passing: usize,
}

impl Findings {
    /// The most consecutive frames one overlay covered the face at one rendition.
    fn longest_covered_spell(&self) -> usize {
        let mut frames: HashMap<(u32, &str), Vec<u32>> = HashMap::new();
        for (frame, lines, id, _, _) in &self.covered {
            frames
                .entry((*lines, id.as_str()))
                .or_default()
                .push(*frame);
        }
        frames
            .into_values()
            .map(|mut seen| {
                seen.sort_unstable();
                seen.dedup();
                let (mut longest, mut run) = (0, 0);
                for (n, frame) in seen.iter().enumerate() {
                    run = if n > 0 && seen[n - 1] + 1 == *frame {
                        run + 1
                    } else {
                        1
                    };
                    longest = longest.max(run);
                }
                longest
            })
            .max()
            .unwrap_or(0)
    }
}

/// Runs the mall zone at `renditions` (lines) on a `width`x`height` test show.
fn place_on_live_show(width: u32, height: u32, renditions: &[u32]) -> Findings {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = lobby_server(&rt);
    let runtime = edge_understand::Runtime::load(&Default::default())
        .expect("ONNX Runtime (run `make setup`)");
    let mut model =
        edge_understand::Model::load(&runtime, &edge_understand::models_dir().join("centerface"))
            .expect("CenterFace (run `make setup`)");
    let mut compositor =
        Compositor::new(edge_compose::CompositorOptions::default()).expect("compositor");
    let (tx, frames) = std::sync::mpsc::sync_channel(4);
    let ingest = edge_media::Ingest::start(
        edge_media::IngestConfig {
            asset_dirs: vec![
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets")
            ],
            ..edge_media::IngestConfig::new(format!(
                "testshow://?width={width}&height={height}&fps=15"
            ))
        },
        move |frame| {
            let _ = tx.try_send(frame);
        },
        |_| {},
    )
    .expect("test show");
    let campaigns = Campaigns::embedded();
    let mut groups = groups_for_test(server.clone());
    let directory = ViewerDirectory::default();
    for (n, &lines) in renditions.iter().enumerate() {
        let mut watcher = viewer(n as u64 + 1, "yintai-mall");
        watcher.rendition_height = lines;
        directory.insert(watcher);
    }
    let avoiding: Vec<String> = campaigns
        .active_overlays("yintai-mall", (unix_now_us() / 1_000_000) as i64)
        .iter()
        .filter(|o| o.placement.avoid == Avoid::Faces)
        .map(|o| o.id.clone())
        .collect();
    assert!(
        !avoiding.is_empty(),
        "the mall shows overlays that avoid faces"
    );

    let mut found = Findings::default();
    let mut obstacles = Obstacles::default();
    let mut previous: HashMap<u32, Vec<(String, Rect)>> = HashMap::new();
    for i in 0..FRAMES {
        let frame = frames
            .recv_timeout(Duration::from_secs(10))
            .expect("frames from the test show");
        if i % 3 == 0 {
            obstacles = faces_in(&mut model, &frame, obstacles.version + 1);
            found.face_runs += 1;
            found.with_face += usize::from(!obstacles.faces.is_empty());
        }
        groups
            .render(
                &mut compositor,
                &frame,
                directory.take_changes(),
                &campaigns,
                &obstacles,
                false,
            )
            .expect("render");
        if i < SETTLING {
            continue;
        }
        assert_eq!(
            groups.groups.len(),
            renditions.len(),
            "one group per rendition"
        );
        let mut placed_by_lines = HashMap::new();
        for group in groups.groups.values() {
            let lines = lines_of(group.output);
            let scale = f64::from(group.output.height) / f64::from(frame.layout.height);
            for (id, rect) in group.placed.iter().filter(|(id, _)| avoiding.contains(id)) {
                found.checked += 1;
                for (face, _) in &obstacles.faces {
                    let face = Rect::new(
                        (f64::from(face.x) * scale) as i32,
                        (f64::from(face.y) * scale) as i32,
                        (f64::from(face.w) * scale).ceil() as u32,
                        (f64::from(face.h) * scale).ceil() as u32,
                    );
                    if rect.intersects(&face) {
                        found.covered.push((i, lines, id.clone(), *rect, face));
                    }
                }
            }
            // Where each overlay came to rest (drawn at the same place as in the last frame):
            // never on another. On its way between two spots an overlay may pass over another
            // for a few frames; it never passes over the face (checked above).
            let before = previous.get(&lines).cloned().unwrap_or_default();
            let at_rest = |id: &str, rect: &Rect| {
                before
                    .iter()
                    .any(|(other, was): &(String, Rect)| other == id && was == rect)
            };
            for (n, (a_id, a)) in group.placed.iter().enumerate() {
                for (b_id, b) in &group.placed[n + 1..] {
                    if a.intersects(b) && at_rest(a_id, a) && at_rest(b_id, b) {
                        found
                            .overlapping
                            .push((i, lines, a_id.clone(), b_id.clone()));
                    }
                    found.passing += usize::from(a.intersects(b));
                }
            }
            placed_by_lines.insert(lines, group.placed.clone());
        }
        compare_shares(&placed_by_lines, &mut found);
        previous = placed_by_lines;
    }
    ingest.stop();
    let outputs: Vec<(u32, u32)> = groups
        .groups
        .values()
        .map(|g| (g.output.width, g.output.height))
        .collect();
    eprintln!(
        "{width}x{height} show, renditions {outputs:?}: {} placements checked against the face (found in {}/{}), {} overlay sizes compared with 720p, overlays passing over another on their way {} times; an overlay that avoids faces covered the face in {} placements, at most {} frames in a row",
        found.checked,
        found.with_face,
        found.face_runs,
        found.compared,
        found.passing,
        found.covered.len(),
        found.longest_covered_spell()
    );
    drop(groups);
    drop(rt);
    found
}

/// The faces CenterFace finds in `frame`, as obstacles of `version`.
fn faces_in(
    model: &mut edge_understand::Model,
    frame: &edge_core::I420Frame,
    version: u64,
) -> Obstacles {
    let found = model.detect_i420(frame).expect("inference");
    Obstacles {
        version,
        faces: found
            .detections
            .iter()
            .filter(|d| d.label == "face")
            .map(|d| (crate::understanding::covering_rect(d.bbox), d.score))
            .collect(),
        text: Vec::new(),
    }
}

/// Each overlay's size at every rendition against its size at 720p, scaled (±1 px).
fn compare_shares(placed_by_lines: &HashMap<u32, Vec<(String, Rect)>>, found: &mut Findings) {
    let reference = &placed_by_lines[&720];
    for (&lines, placed) in placed_by_lines.iter().filter(|(lines, _)| **lines != 720) {
        let expected = |v: u32| (f64::from(v) * f64::from(lines) / 720.0).round() as i64;
        for (id, big) in reference {
            let (_, small) = placed
                .iter()
                .find(|(other, _)| other == id)
                .unwrap_or_else(|| panic!("{id} is drawn at {lines}p too"));
            found.compared += 1;
            if (i64::from(small.w) - expected(big.w)).abs() > 1
                || (i64::from(small.h) - expected(big.h)).abs() > 1
            {
                found
                    .wrong_share
                    .push((lines, id.clone(), (big.w, big.h), (small.w, small.h)));
            }
        }
    }
}

/// Asserts what `found` must show. The host walks about, and faces are detected on every 3rd
/// frame (more show time apart when a loaded machine drops frames), so the face can step into
/// an overlay between two detections, or one gliding off can still touch it; an overlay at
/// rest waits [`SmoothingConfig::min_dwell`] before it moves, so that one detection cannot
/// make it jump. So an overlay that avoids faces may touch the face, but only in short
/// spells: at most [`MAX_COVERED_FRAMES`] frames in a row, in at most [`MAX_COVERED_SHARE`] of
/// the placements.
fn assert_layout_holds(found: &Findings, renditions: usize) {
    assert!(
        found.with_face * 10 >= found.face_runs * 8,
        "the face is found: {}/{}",
        found.with_face,
        found.face_runs
    );
    let frames = (FRAMES - SETTLING) as usize;
    assert!(
        found.checked >= frames * renditions,
        "placements checked: {}",
        found.checked
    );
    assert!(
        found.compared >= frames * (renditions - 1) * 3,
        "the mall's overlays compared at each rendition: {}",
        found.compared
    );
    let spell = found.longest_covered_spell();
    assert!(
        spell <= MAX_COVERED_FRAMES,
        "an overlay stayed on the face for {spell} frames in a row: {:?}",
        found.covered
    );
    assert!(
        found.covered.len() as f64 <= MAX_COVERED_SHARE * found.checked as f64,
        "overlays covered the face in {} of {} placements: {:?}",
        found.covered.len(),
        found.checked,
        found.covered
    );
    assert!(
        found.overlapping.is_empty(),
        "overlays at rest on each other: {:?}",
        found.overlapping
    );
    assert!(
        found.wrong_share.is_empty(),
        "overlays covering another share of the frame than at 720p: {:?}",
        found.wrong_share
    );
}

/// The default test show (1280x720) at 720p and 360p.
#[test]
fn overlays_keep_clear_of_the_detected_face_on_the_live_test_show() {
    let found = place_on_live_show(1280, 720, &[720, 360]);
    assert_layout_holds(&found, 2);
}

/// A 1080p show at every rendition the default campaign offers.
#[test]
fn landscape_layout_holds_at_every_rendition() {
    let renditions = default_renditions();
    let found = place_on_live_show(1920, 1080, &renditions);
    assert_layout_holds(&found, renditions.len());
}

/// A vertical 1080x1920 show at every rendition the default campaign offers (named by the
/// short side: 720p is 720x1280). The test show's host crosses a tall frame about twice as
/// fast (in shares of the width) as a wide one, and the product card is half the frame's
/// width, so the face walks into it more often than on a wide show.
#[test]
fn portrait_layout_holds_at_every_rendition() {
    let renditions = default_renditions();
    let found = place_on_live_show(1080, 1920, &renditions);
    assert_layout_holds(&found, renditions.len());
}

fn default_renditions() -> Vec<u32> {
    let lines: Vec<u32> = Campaigns::embedded()
        .settings
        .renditions
        .iter()
        .map(|r| r.height)
        .collect();
    assert!(
        lines.contains(&720) && lines.len() >= 3,
        "the default campaign offers 720p and others: {lines:?}"
    );
    lines
}
