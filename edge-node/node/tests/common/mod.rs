//! Shared pieces of the node's end-to-end tests: real processes, real ports, killed on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root exists")
}

pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// A port free for both UDP (QUIC) and TCP (certificate hash) right now.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("udp addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP+TCP port found");
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

/// A child process killed when dropped, with its stderr collected line by line.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
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
        for stream in [
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let (log, tx, tag) = (log.clone(), tx.clone(), name.to_string());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("EDGE_TEST_VERBOSE").is_some() {
                        eprintln!("[{tag}] {line}");
                    }
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
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
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "{} exited ({status}) before printing {needle:?}:\n{}",
                            self.name,
                            self.log_text()
                        );
                    }
                    if Instant::now() >= deadline {
                        panic!(
                            "{} did not print {needle:?} within {timeout:?}:\n{}",
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

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} still running after {timeout:?}:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
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

/// Writes `text` as `node.toml` in the temp directory `edge-node-{name}`; returns its path.
pub fn write_node_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-node-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Spawns `cmd` (an `edge-node serve …`) and waits until it serves (its first frame has
/// arrived).
pub fn spawn_serving(cmd: Command) -> Proc {
    let mut node = Proc::spawn("edge-node", cmd);
    node.wait_for("edge-node serving at", Duration::from_secs(60));
    node
}

/// Starts `edge-node serve` and waits until it serves (its first frame has arrived).
pub fn start_node(upstream: &str, port: u16, duration_s: u32) -> Proc {
    let mut cmd = node_command();
    cmd.args([
        "serve",
        "--upstream",
        upstream,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--duration",
        &duration_s.to_string(),
    ]);
    spawn_serving(cmd)
}
