//! An upstream that changes its colour description mid-stream: the render groups follow the
//! frames, so the compositor converts overlays into the new colour and every running encoder
//! restarts its stream tagged with it, without losing the group or its frames.

use super::*;
use edge_core::{ColourMatrix, VideoColour};

#[test]
fn running_encoders_follow_the_frames_colour() {
    let (rt, mut groups, mut compositor) = lobby_groups();
    let campaigns = Campaigns::embedded();
    let directory = ViewerDirectory::default();
    let mut watcher = viewer(1, "default");
    watcher.rendition_height = 180;
    directory.insert(watcher);
    let sd = VideoColour::assumed_for(320, 180);
    let hd = VideoColour {
        matrix: ColourMatrix::Bt709,
        ..sd
    };
    assert_eq!(sd.matrix, ColourMatrix::Bt601);
    let layout = PlaneLayout::new(320, 180).unwrap();
    groups.set_source_colour(sd);
    warmed(&mut groups, layout, 180);
    let mut render = |seqs: std::ops::Range<u64>, colour: VideoColour| {
        for seq in seqs {
            let frame = grey_frame(layout, seq).with_colour(colour);
            render_for(&mut groups, &mut compositor, &directory, &campaigns, &frame);
        }
        let group = groups.groups.values().next().expect("the viewer's group");
        (
            group.encoder.config().colour,
            compositor.source_colour(),
            group.encoder.stats().frames_in,
            groups.groups.len(),
        )
    };
    assert_eq!(render(0..5, sd), (sd, sd, 5, 1), "an SD stream, as SD");
    assert_eq!(
        render(5..10, hd),
        (hd, hd, 10, 1),
        "the same group and encoder, now tagged BT.709"
    );
    drop(groups);
    drop(rt);
}
