//! Shared pieces of the node's end-to-end tests: real processes, real ports, killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

/// Environment the node needs on a machine without a GPU.
pub fn node_command() -> Command {
    let root = repo_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edge-node"));
    let runtime_dir = std::env::temp_dir().join("edge-node-test-runtime");
    std::fs::create_dir_all(&runtime_dir).expect("runtime dir");
    cmd.env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("EDGE_NODE_ASSET_DIR", root.join(".cache/assets"))
        // Tests run nodes side by side: each gets its own admin port.
        .env("EDGE_NODE_ADMIN", "127.0.0.1:0")
        .env(
            "RUST_LOG",
            "info,wgpu_core=warn,wgpu_hal=warn,naga=warn,moq_net=warn",
        );
    cmd
}

/// Which pipe of the child a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pipe {
    Stdout,
    Stderr,
}

/// A child process killed when dropped, with its stdout and stderr collected line by line.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<(Pipe, String)>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        for (pipe, stream) in [
            (
                Pipe::Stderr,
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            ),
            (
                Pipe::Stdout,
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            ),
        ] {
            let Some(stream) = stream else { continue };
            let (log, tx, tag) = (log.clone(), tx.clone(), name.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("EDGE_TEST_VERBOSE").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send((pipe, line));
                }
            });
        }
        Proc {
            name: name.into(),
            child,
            log,
            lines,
        }
    }

    /// Waits for a line containing `needle`; panics with the log so far on timeout or exit.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line(timeout, &format!("{needle:?}"), |_, line| {
            line.contains(needle)
        })
    }

    /// Waits for the JSON line `{"event": event, ...}` on stdout (the node's machine-readable
    /// reports) and returns it parsed.
    pub fn wait_for_event(&mut self, event: &str, timeout: Duration) -> serde_json::Value {
        let line = self.wait_for_line(timeout, &format!("the {event:?} event"), |pipe, line| {
            pipe == Pipe::Stdout
                && serde_json::from_str::<serde_json::Value>(line)
                    .is_ok_and(|v| v["event"] == event)
        });
        serde_json::from_str(&line).expect("matched as JSON")
    }

    fn wait_for_line(
        &mut self,
        timeout: Duration,
        what: &str,
        mut matches: impl FnMut(Pipe, &str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((pipe, line)) if matches(pipe, &line) => return line,
                Ok(_) => {}
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "{} exited ({status}) before printing {what}:\n{}",
                            self.name,
                            self.log_text()
                        );
                    }
                    if Instant::now() >= deadline {
                        panic!(
                            "{} did not print {what} within {timeout:?}:\n{}",
                            self.name,
                            self.log_text()
                        );
                    }
                }
            }
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits for the child to exit and for its pipes to be read to the end.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader threads end (and drop their senders) once the pipes close: then
                // every line is in the log.
                let drained = Instant::now() + Duration::from_secs(5);
                // A grandchild may hold a pipe open: past 5 s the exit status is what counts.
                while self
                    .lines
                    .recv_timeout(drained.saturating_duration_since(Instant::now()))
                    .is_ok()
                {}
                return status;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(mpsc::RecvTimeoutError::Disconnected) =
                self.lines.recv_timeout(left.min(Duration::from_millis(50)))
            {
                // Both pipes closed before the exit: poll for it.
                std::thread::sleep(Duration::from_millis(10));
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} still running after {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory under the system temp dir, unique to this call (not just this process:
/// tests of one binary run in parallel threads).
pub fn unique_temp_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("edge-node-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

/// Writes `text` as `node.toml` in a fresh temp directory; returns its path.
pub fn write_node_config(name: &str, text: &str) -> PathBuf {
    let path = unique_temp_dir(name).join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A node that serves, with the addresses it reported binding (it chose the ports).
pub struct ServingNode {
    pub proc: Proc,
    /// UDP for QUIC; TCP on the same port number serves `/certificate.sha256`.
    pub quic: SocketAddr,
    pub admin: SocketAddr,
}

impl ServingNode {
    pub fn quic_port(&self) -> u16 {
        self.quic.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.admin.port()
    }

    /// `https://127.0.0.1:PORT/{path_and_query}`.
    pub fn url(&self, path_and_query: &str) -> url::Url {
        url::Url::parse(&format!(
            "https://127.0.0.1:{}/{path_and_query}",
            self.quic_port()
        ))
        .expect("a valid URL")
    }

    /// The admin API's `GET path` body, failing the test on a non-200 status.
    pub fn admin_get(&self, path: &str) -> String {
        let (status, _, body) = http(self.admin_port(), "GET", path, &[], "");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The value of the sample `series` (name and labels exactly as exposed) in `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.admin_get("/metrics"), series)
    }

    /// The established sessions as `/api/v1/sessions` lists them (needs no token unless the
    /// node was configured with one).
    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let list: serde_json::Value =
            serde_json::from_str(&self.admin_get("/api/v1/sessions")).expect("sessions JSON");
        list["sessions"].as_array().expect("a session list").clone()
    }
}

impl std::ops::Deref for ServingNode {
    type Target = Proc;
    fn deref(&self) -> &Proc {
        &self.proc
    }
}

impl std::ops::DerefMut for ServingNode {
    fn deref_mut(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// Spawns `cmd` (an `edge-node serve …`, ports 0 allowed) and waits until it serves (its first
/// frame has arrived), reading the addresses from its `serving` report on stdout.
pub fn spawn_serving(cmd: Command) -> ServingNode {
    let mut proc = Proc::spawn("edge-node", cmd);
    let serving = proc.wait_for_event("serving", Duration::from_secs(60));
    let addr = |key: &str| -> SocketAddr {
        serving[key]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{key} is an address in {serving}"))
    };
    let (quic, admin) = (addr("quic"), addr("admin"));
    ServingNode { proc, quic, admin }
}

/// `edge-node serve` of `upstream` for `duration_s` seconds on ports it picks, with overlays at
/// their anchors (no content understanding moves them out of a face's way, so the pixels checked
/// and the spots tapped are where the campaign puts them) and no admission (a debug build on a
/// shared machine measures costs a release build does not have, and admission would rightly
/// degrade or refuse the groups and taps under test).
pub fn anchored_node_command(upstream: &str, duration_s: u32) -> Command {
    let mut cmd = node_command();
    cmd.args(["serve", "--upstream", upstream])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--duration",
            &duration_s.to_string(),
        ])
        .env("EDGE_NODE_UNDERSTANDING_ENABLED", "false")
        .env("EDGE_NODE_BUDGET_ADMISSION", "false");
    cmd
}

/// Starts `edge-node serve` on ports it picks and waits until it serves.
pub fn start_node(upstream: &str, duration_s: u32) -> ServingNode {
    let mut cmd = node_command();
    cmd.args([
        "serve",
        "--upstream",
        upstream,
        "--listen",
        "127.0.0.1:0",
        "--duration",
        &duration_s.to_string(),
    ]);
    spawn_serving(cmd)
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on its own connection: (status, head, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin port open");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

/// The value of one sample in a Prometheus text exposition: `series` is the name with its
/// labels exactly as exposed, e.g. `edge_frames_total{stage="send"}`.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Polls `condition` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
