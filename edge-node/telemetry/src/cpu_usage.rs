//! CPU time from Linux `/proc`, for benches that share the machine with their own load
//! generators: this process split by thread name (the bench's viewers run on threads of their
//! own name, the node on all the others), and the whole machine's busy share (other programs
//! included, so a noisy neighbour shows in the report instead of hiding in the numbers).

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::time::Instant;

/// Clock ticks per second of `/proc` CPU times: Linux's USER_HZ, fixed at 100 in its ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// Cumulative CPU counters at one moment.
#[derive(Clone, Debug)]
pub struct CpuSample {
    at: Instant,
    /// This process, every thread that ever ran (exited ones included), in ticks.
    process_ticks: u64,
    /// This process's live threads whose name starts with the prefix asked for, in ticks.
    named_ticks: u64,
    /// The machine: (busy, total) ticks over all cores.
    machine: (u64, u64),
    cores: usize,
}

/// CPU used between two samples, in cores (1.0 = one core busy the whole time).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CpuUse {
    /// This process.
    pub process_cores: f64,
    /// Threads named with the prefix (the bench's viewers).
    pub named_cores: f64,
    /// The rest of this process (the node).
    pub other_cores: f64,
    /// Busy share of the whole machine, every program included (1.0 = all cores busy).
    pub machine_busy: f64,
    /// Busy machine time outside this process's threads, in cores: other programs, and kernel
    /// work not charged to any thread (such as loopback packets handled in softirq).
    pub rest_of_machine_cores: f64,
    /// Cores the machine has.
    pub machine_cores: usize,
}

impl CpuSample {
    /// Reads the counters now; threads whose name starts with `prefix` are counted apart.
    pub fn now(prefix: &str) -> Result<Self> {
        let process = read("/proc/self/stat")?;
        let process_ticks = stat_ticks(&process)?;
        let mut named_ticks = 0;
        for entry in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
            let dir = entry?.path();
            // A thread may exit between listing and reading: it simply no longer counts.
            let (Ok(name), Ok(stat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue;
            };
            if name.trim_end().starts_with(prefix) {
                named_ticks += stat_ticks(&stat)?;
            }
        }
        let machine = machine_ticks(&read("/proc/stat")?)?;
        Ok(Self {
            at: Instant::now(),
            process_ticks,
            named_ticks,
            machine,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// What was used from `self` until `later`.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
        let process = later.process_ticks.saturating_sub(self.process_ticks);
        // A viewer thread that exited takes its ticks along; never report more than the process.
        let named = later
            .named_ticks
            .saturating_sub(self.named_ticks)
            .min(process);
        let busy = later.machine.0.saturating_sub(self.machine.0);
        let total = later.machine.1.saturating_sub(self.machine.1);
        let machine_busy = if total == 0 {
            0.0
        } else {
            busy as f64 / total as f64
        };
        CpuUse {
            process_cores: cores(process),
            named_cores: cores(named),
            other_cores: cores(process - named),
            machine_busy,
            rest_of_machine_cores: (machine_busy * later.cores as f64 - cores(process)).max(0.0),
            machine_cores: later.cores,
        }
    }
}

/// CPU time, in nanoseconds, of this process's live threads whose name `wanted` accepts, from
/// the scheduler's statistics (nanosecond precision, unlike the tick counts of `stat`); `None`
/// where they are not readable.
pub fn threads_cpu_ns(wanted: impl Fn(&str) -> bool) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        // A thread may exit between listing and reading: it no longer counts.
        let Ok(name) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if !wanted(name.trim_end()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        total += schedstat_cpu_ns(&stat)?;
    }
    Some(total)
}

/// CPU time of the calling thread, in nanoseconds; `None` where Linux's scheduler statistics
/// are not readable.
pub fn thread_cpu_ns() -> Option<u64> {
    schedstat_cpu_ns(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// The first field of a `schedstat` file: time spent on the CPU, in nanoseconds.
fn schedstat_cpu_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path} (Linux only)"))
}

/// utime + stime of a `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat` line (fields 14 and
/// 15; the name in field 2 may hold spaces and parentheses, so fields count from its last `)`).
fn stat_ticks(stat: &str) -> Result<u64> {
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("no `)` in a /proc stat line")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of a /proc stat line", i + 3))
    };
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    Ok(field(11)? + field(12)?)
}

/// (busy, total) ticks from the aggregate `cpu` line of `/proc/stat`. Busy is everything but
/// idle and iowait; guest time is already inside user time, so only the first eight count.
fn machine_ticks(stat: &str) -> Result<(u64, u64)> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no aggregate cpu line in /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse::<u64>())
        .collect::<Result<_, _>>()
        .context("a non-numeric /proc/stat cpu field")?;
    if values.len() < 5 {
        bail!("the /proc/stat cpu line has {} fields", values.len());
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Ok((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let line =
            "4242 (bench (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(stat_ticks(line).unwrap(), 325);
        assert!(stat_ticks("4242 no parenthesis").is_err());
        assert!(stat_ticks("1 (x) S 1").is_err());
    }

    #[test]
    fn machine_busy_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 10 50 800 40 0 0 0 7 0\ncpu0 50 5 25 400 20 0 0 0 0 0\n";
        assert_eq!(machine_ticks(stat).unwrap(), (160, 1000));
        assert!(machine_ticks("intr 1 2 3\n").is_err());
    }

    #[test]
    fn use_is_in_cores_and_the_named_part_never_exceeds_the_process() {
        let start = CpuSample {
            at: Instant::now(),
            process_ticks: 1_000,
            named_ticks: 300,
            machine: (5_000, 10_000),
            cores: 2,
        };
        let later = CpuSample {
            at: start.at + Duration::from_secs(2),
            process_ticks: 1_300,
            named_ticks: 1_000,
            machine: (5_360, 10_400),
            cores: 2,
        };
        let used = start.until(&later);
        assert!((used.process_cores - 1.5).abs() < 1e-9);
        assert!(
            (used.named_cores - 1.5).abs() < 1e-9,
            "capped at the process"
        );
        assert_eq!(used.other_cores, 0.0);
        assert!((used.machine_busy - 0.9).abs() < 1e-9);
        assert!(
            (used.rest_of_machine_cores - 0.3).abs() < 1e-9,
            "1.8 busy - 1.5 ours"
        );
    }

    #[test]
    fn this_process_can_be_sampled() {
        let a = CpuSample::now("no-such-thread").unwrap();
        let b = CpuSample::now("no-such-thread").unwrap();
        let used = a.until(&b);
        assert_eq!(used.named_cores, 0.0);
        assert!(used.machine_busy >= 0.0 && used.machine_busy <= 1.0);
    }

    /// Busy threads of this test process, found by name, show their CPU time.
    #[test]
    fn cpu_of_named_threads_is_read_from_proc() {
        let name = "cost-probe";
        let spin = std::thread::Builder::new()
            .name(name.into())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut x = 0u64;
                while started.elapsed() < Duration::from_millis(60) {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
                std::thread::sleep(Duration::from_millis(500));
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let cpu = super::threads_cpu_ns(|n| n == name).unwrap();
        assert!(cpu >= 20_000_000, "the spinning thread used {cpu} ns");
        assert_eq!(super::threads_cpu_ns(|n| n == "no-such-thread"), Some(0));
        spin.join().unwrap();
    }
}
