//! What delivering one frame to one viewer costs, measured on the running node.
//!
//! The encoder writes each access unit once; everything after that (each viewer's forwarder,
//! its MoQ session, QUIC, TLS, the socket) runs on the async runtime's threads. Admission
//! charges every viewer that work per frame, so it is measured where it happens: the CPU time
//! of the runtime's threads over the viewer-frames handed to them in the same second. The
//! runtime also carries the admin API and timers, so the estimate errs on the expensive side,
//! the safe side for admission. A second in which viewers arrived is left out: each arrival's
//! QUIC and TLS handshake costs a millisecond or more once, which is not what it costs to keep
//! the viewer fed.

use std::sync::Arc;
use std::time::Duration;

use crate::admission_gate::AdmissionGate;
use edge_telemetry::cpu_usage::threads_cpu_ns;

/// Name of the async runtime's worker threads (what `/proc/self/task/*/comm` shows).
pub const IO_THREAD_NAME: &str = "edge-node-io";

const PERIOD: Duration = Duration::from_secs(1);

/// A second with fewer viewer-frames than this (8 viewers at 30 fps) measures the runtime's
/// fixed costs more than its sending.
const MIN_VIEWER_FRAMES: u64 = 240;

/// Feeds the model one measured per-viewer send cost a second, for as long as the node runs.
/// Returns at once where Linux's per-thread scheduler statistics are not readable.
pub async fn learn(admission: Arc<AdmissionGate>) {
    let mut ticker = tokio::time::interval(PERIOD);
    let mut last: Option<(u64, u64, u64)> = None;
    loop {
        ticker.tick().await;
        let Some(cpu_ns) = threads_cpu_ns(|name| name == IO_THREAD_NAME) else {
            tracing::info!(
                "per-thread CPU not readable: the send cost stays at its calibrated value"
            );
            return;
        };
        let (viewer_frames, arrivals) = (admission.viewer_frames(), admission.arrivals());
        let steady = last.filter(|&(_, _, arrivals_before)| arrivals_before == arrivals);
        if let Some(per_viewer_frame) = steady.and_then(|(cpu_before, frames_before, _)| {
            send_cost(
                cpu_ns.saturating_sub(cpu_before),
                viewer_frames.saturating_sub(frames_before),
            )
        }) {
            tracing::debug!(
                per_viewer_frame_us = per_viewer_frame.as_micros() as u64,
                "delivery cost measured"
            );
            admission.observe(|model| model.observe_send(per_viewer_frame));
        }
        last = Some((cpu_ns, viewer_frames, arrivals));
    }
}

/// The CPU per viewer-frame of one period, when it saw enough viewer-frames to say.
fn send_cost(cpu_ns: u64, viewer_frames: u64) -> Option<Duration> {
    (viewer_frames >= MIN_VIEWER_FRAMES).then(|| Duration::from_nanos(cpu_ns / viewer_frames))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_second_teaches_nothing() {
        assert_eq!(send_cost(5_000_000, MIN_VIEWER_FRAMES - 1), None);
        assert_eq!(send_cost(6_000_000, 6_000), Some(Duration::from_micros(1)));
    }
}
