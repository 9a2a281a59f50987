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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A window in which the machine stopped for longer than this is measured again.
pub const STALL_LIMIT: Duration = Duration::from_millis(10);

const NAP: Duration = Duration::from_millis(1);

/// The process's probe, started on first use.
pub fn probe() -> &'static MachineStallProbe {
    static PROBE: std::sync::OnceLock<MachineStallProbe> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| MachineStallProbe::start().expect("spawning the stall probe thread"))
}

pub struct MachineStallProbe {
    shared: Arc<ProbeShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct ProbeShared {
    worst_ns: AtomicU64,
    realtime: AtomicBool,
    stop: AtomicBool,
}

impl MachineStallProbe {
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(ProbeShared::default());
        let probe = shared.clone();
        let (started_tx, started) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("stall-probe".into())
            .spawn(move || {
                let param = libc::sched_param { sched_priority: 99 };
                // SAFETY: a valid sched_param; pid 0 is this thread.
                let realtime =
                    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
                probe.realtime.store(realtime, Ordering::Relaxed);
                let _ = started_tx.send(());
                while !probe.stop.load(Ordering::Relaxed) {
                    let before = Instant::now();
                    std::thread::sleep(NAP);
                    let late = before.elapsed().saturating_sub(NAP).as_nanos() as u64;
                    probe.worst_ns.fetch_max(late, Ordering::Relaxed);
                }
            })?;
        let _ = started.recv();
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Whether the probe runs at real-time priority, so that its figure is the machine's.
    pub fn realtime(&self) -> bool {
        self.shared.realtime.load(Ordering::Relaxed)
    }

    /// Starts a new window.
    pub fn restart(&self) {
        self.shared.worst_ns.store(0, Ordering::Relaxed);
    }

    /// The longest the probe waited beyond its nap since [`Self::restart`].
    pub fn worst(&self) -> Duration {
        Duration::from_nanos(self.shared.worst_ns.load(Ordering::Relaxed))
    }

    /// Whether the machine stopped for longer than [`STALL_LIMIT`] since [`Self::restart`]
    /// (always false for a probe that could not get real-time priority).
    pub fn stalled(&self) -> bool {
        self.realtime() && self.worst() > STALL_LIMIT
    }
}

impl Drop for MachineStallProbe {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
