//! Scheduling precedence for the frame path: the thread that composes every rendering and the
//! threads that encode them.
//!
//! A node's delivery tasks (hundreds of viewers' sends) and its encoders share the cores. Under
//! the normal scheduler a burst of sends after one rendering's access unit delays the next
//! rendering's encode by as long as the burst lasts, so node latency grows with the number of
//! viewers even while cores are idle half the time. Under `SCHED_FIFO` (lowest real-time
//! priority) an encode that has a frame runs at once and the sends fill the gaps: measured on 2
//! cores with 200 viewers, node p99 halves. The sends then wait for the encodes, though, so
//! under a heavy fan-out the viewers' own latency grows: it is a choice for sites whose
//! renderings have few viewers each, off by default. The kernel's real-time throttling
//! (`sched_rt_runtime_us`, 95% by default) keeps the rest of the machine alive however loaded
//! the encoders are, and admission keeps them from taking that much in the first place.
//!
//! Real-time scheduling needs `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO` above 0). Without it the
//! frame path keeps the normal scheduler, and the node says so once.

use std::sync::atomic::{AtomicBool, Ordering};

/// The real-time priority asked for: the lowest, above every normal thread and below anything
/// an operator runs at real-time priority on purpose.
const FRAME_PATH_PRIORITY: i32 = 1;

static REALTIME_WANTED: AtomicBool = AtomicBool::new(false);
static REFUSAL_REPORTED: AtomicBool = AtomicBool::new(false);

/// Whether frame-path threads started from now on ask for real-time scheduling. The node sets
/// this once from its configuration; it is off until then, so tools and tests that embed the
/// engine keep the normal scheduler unless they ask.
pub fn set_realtime_frame_path(wanted: bool) {
    REALTIME_WANTED.store(wanted, Ordering::Relaxed);
}

/// Gives the calling thread the frame path's precedence, if the node asks for it. Returns
/// whether the thread now runs at real-time priority. A refusal is reported once per process
/// (every frame-path thread would be refused for the same reason).
pub fn enter_frame_path(role: &'static str) -> bool {
    if !REALTIME_WANTED.load(Ordering::Relaxed) {
        return false;
    }
    match set_current_thread_realtime(FRAME_PATH_PRIORITY) {
        Ok(()) => true,
        Err(error) => {
            if !REFUSAL_REPORTED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    thread = role,
                    %error,
                    "the frame path runs under the normal scheduler: real-time priority needs CAP_SYS_NICE (see README, \"Frame path priority\")"
                );
            }
            false
        }
    }
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1-99); an error when the process
/// may not (no `CAP_SYS_NICE`, no `RLIMIT_RTPRIO`).
#[cfg(target_os = "linux")]
pub fn set_current_thread_realtime(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_current_thread_realtime(_priority: i32) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "real-time scheduling is only used on Linux",
    ))
}

/// The calling thread's scheduling policy (`libc::SCHED_*`).
#[cfg(target_os = "linux")]
pub fn current_thread_policy() -> i32 {
    // SAFETY: no arguments beyond this thread's id (0).
    unsafe { libc::sched_getscheduler(0) }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Off unless asked for; asked for, the thread either runs at real-time priority or stays
    /// where it was (no privilege) and says it did not move.
    #[test]
    fn a_frame_path_thread_gets_real_time_priority_only_when_asked_and_allowed() {
        let not_asked = std::thread::spawn(|| (enter_frame_path("test"), current_thread_policy()))
            .join()
            .unwrap();
        assert_eq!(not_asked, (false, libc::SCHED_OTHER));

        set_realtime_frame_path(true);
        let (raised, policy) =
            std::thread::spawn(|| (enter_frame_path("test"), current_thread_policy()))
                .join()
                .unwrap();
        set_realtime_frame_path(false);
        if raised {
            assert_eq!(policy, libc::SCHED_FIFO);
        } else {
            assert_eq!(
                policy,
                libc::SCHED_OTHER,
                "a refused thread keeps its policy"
            );
        }
    }
}
