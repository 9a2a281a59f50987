//! How long the machine itself stopped running this process during a window.
//!
//! On a shared virtual machine the host now and then leaves every vCPU of the guest unrun for
//! tens of milliseconds (about once in 20 s on the CI machine). Every frame in flight then
//! arrives that much later, which puts a 5 s window's p99 over budget whatever the node does.
//! A thread at the highest real-time priority that sleeps 1 ms at a time is late only when the
//! machine did not run it: neither the node (at most real-time priority 1) nor other programs
//! can hold it back. Its worst lateness in a window tells a stalled machine from a slow node.
//! Without the privilege for real-time priority (CAP_SYS_NICE) the probe still runs, but its
//! figure then includes ordinary scheduling delay and is not used to judge windows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A window in which the machine stopped for longer than this is measured again. The probe's
/// worst lateness in an undisturbed window is under 1 ms; with 5 or more renderings a stop of
/// 5-10 ms was enough to put a window's p99 over budget.
pub const STALL_LIMIT: Duration = Duration::from_millis(5);

const NAP: Duration = Duration::from_millis(1);

/// The process's probe, started on first use; its thread runs until the process exits.
pub fn probe() -> &'static MachineStallProbe {
    static PROBE: std::sync::OnceLock<MachineStallProbe> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| MachineStallProbe::start().expect("spawning the stall probe thread"))
}

pub struct MachineStallProbe {
    worst_ns: Arc<AtomicU64>,
    /// Whether the probe thread got real-time priority, so that its figure is the machine's.
    realtime: bool,
}

impl MachineStallProbe {
    fn start() -> std::io::Result<Self> {
        let worst_ns = Arc::new(AtomicU64::new(0));
        let worst = worst_ns.clone();
        let (realtime_tx, realtime) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("stall-probe".into())
            .spawn(move || {
                let _ =
                    realtime_tx.send(edge_media::priority::set_current_thread_realtime(99).is_ok());
                loop {
                    let before = Instant::now();
                    std::thread::sleep(NAP);
                    let late = before.elapsed().saturating_sub(NAP).as_nanos() as u64;
                    worst.fetch_max(late, Ordering::Relaxed);
                }
            })?;
        Ok(Self {
            worst_ns,
            realtime: realtime.recv().unwrap_or(false),
        })
    }

    /// Whether the probe runs at real-time priority, so that its figure is the machine's.
    pub fn realtime(&self) -> bool {
        self.realtime
    }

    /// Starts a new window.
    pub fn restart(&self) {
        self.worst_ns.store(0, Ordering::Relaxed);
    }

    /// The longest the probe waited beyond its nap since [`Self::restart`].
    pub fn worst(&self) -> Duration {
        Duration::from_nanos(self.worst_ns.load(Ordering::Relaxed))
    }

    /// Whether the machine stopped for longer than [`STALL_LIMIT`] since [`Self::restart`]
    /// (always false for a probe that could not get real-time priority).
    pub fn stalled(&self) -> bool {
        self.realtime && self.worst() > STALL_LIMIT
    }
}
