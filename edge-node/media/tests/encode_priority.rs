//! The encoder's thread takes the frame path's real-time precedence when the node asks for it
//! (its own test binary: the setting is process-wide).

use bytes::Bytes;
use edge_core::FrameMeta;
use edge_media::priority::{
    current_thread_policy, set_current_thread_realtime, set_realtime_frame_path,
};
use edge_media::{Encoder, EncoderConfig};
use std::sync::mpsc;
use std::time::Duration;

/// Whether this process may use SCHED_FIFO at all (root or CAP_SYS_NICE), tried on a
/// throwaway thread.
fn realtime_permitted() -> bool {
    std::thread::spawn(|| set_current_thread_realtime(1).is_ok())
        .join()
        .unwrap()
}

#[test]
fn the_encoders_thread_runs_at_real_time_priority_when_the_node_asks() {
    set_realtime_frame_path(true);
    let (tx, policies) = mpsc::channel();
    let config = EncoderConfig {
        encoder: Some("x264enc".into()),
        threads: 2,
        ..EncoderConfig::for_format(320, 240, 30)
    };
    let frame_len = config.width as usize * config.height as usize * 3 / 2;
    let encoder = Encoder::new(config, move |_| {
        let _ = tx.send(current_thread_policy());
    })
    .expect("x264enc");
    let meta = FrameMeta {
        seq: 0,
        pts_ns: 0,
        received_unix_us: 0,
    };
    encoder
        .push(Bytes::from(vec![128u8; frame_len]), meta, true)
        .expect("a frame in");
    let policy = policies
        .recv_timeout(Duration::from_secs(10))
        .expect("an access unit out");
    let expected = if realtime_permitted() {
        libc::SCHED_FIFO
    } else {
        eprintln!("no CAP_SYS_NICE here: the encoder must keep the normal scheduler");
        libc::SCHED_OTHER
    };
    assert_eq!(policy, expected, "the encoder thread's policy");
}
