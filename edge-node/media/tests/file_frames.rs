//! `decode_file_frames`: every frame of a file, in order.

mod common;

use common::{h264_ts, temp_dir};

#[test]
fn every_frame_of_a_clip_comes_out_in_order() {
    let dir = temp_dir("file-frames");
    let path = dir.join("clip.ts");
    h264_ts(&path, 320, 240, 45, 0, "smpte");
    let mut seen = Vec::new();
    let decoded = edge_media::decode_file_frames(&path, |frame| {
        assert_eq!((frame.layout.width, frame.layout.height), (320, 240));
        seen.push(frame.meta.seq);
    })
    .unwrap();
    assert_eq!(decoded, 45);
    assert_eq!(seen, (0..45).collect::<Vec<u64>>());
}
