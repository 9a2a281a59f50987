//! Runs `web/test/browser.mjs` (Debian's Chromium through playwright-core) and returns the one
//! result object it prints; runs the page's own modules under Node.js for checks. Needs
//! `scripts/setup-web.sh` (the page bundle, `npm ci`, Chromium). Shared by the viewer-page tests
//! of edge-deliver and edge-node (included by path), so not every test uses every function.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The viewer page's folder (`web/`).
pub fn web_dir() -> PathBuf {
    repository().join("web")
}

/// Node.js >= 20: the one setup put in `.venv-node` where the system's is older, else `node`.
pub fn node_js() -> PathBuf {
    let ours = repository().join(".venv-node/bin/node");
    if ours.is_file() {
        ours
    } else {
        "node".into()
    }
}

async fn run_script(args: &[String], env: &[(String, String)]) -> Output {
    let mut command = Command::new(node_js());
    command
        .arg(web_dir().join("test/browser.mjs"))
        .args(args)
        .envs(env.iter().cloned());
    // The script bounds its own run (90 s); this only catches one that ignores it.
    tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .expect("browser script ends within its own limit")
    .expect("browser script thread")
    .expect("node runs")
}

/// `node web/test/browser.mjs ARGS…`'s `EDGE_BROWSER_RESULT`; a run whose renderer crashed
/// (the browser's failure under memory or CPU pressure, not the page's) is tried once more.
pub async fn browser(args: &[&str]) -> Value {
    browser_with_env(args, &[]).await
}

/// [`browser`] with environment variables for the script (`EDGE_BROWSER_*`).
pub async fn browser_with_env(args: &[&str], env: &[(&str, &str)]) -> Value {
    let web = web_dir();
    for (needed, what) in [
        (web.join("dist/index.html"), "the page bundle"),
        (web.join("node_modules/playwright-core"), "npm ci in web/"),
        (PathBuf::from("/usr/bin/chromium"), "Debian's chromium"),
    ] {
        assert!(
            needed.exists(),
            "{} is missing ({what}): run scripts/setup-web.sh",
            needed.display()
        );
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut output = run_script(&args, &env).await;
    let crashed = |o: &Output| String::from_utf8_lossy(&o.stderr).contains("Target crashed");
    if !output.status.success() && crashed(&output) {
        eprintln!("the browser's renderer crashed; running the browser script once more");
        output = run_script(&args, &env).await;
    }
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    if !stderr.trim().is_empty() {
        eprintln!("browser script stderr:\n{stderr}");
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("EDGE_BROWSER_RESULT "))
        .unwrap_or_else(|| panic!("no result line in:\n{stdout}"));
    serde_json::from_str(line).expect("result is JSON")
}

/// Runs the Node.js script `web/test/<script>` on a file of `input` lines and returns the
/// lines it prints (for checks of the page's own modules against what the node makes).
pub fn node_script_lines(script: &str, input: &[String]) -> Vec<String> {
    let file = std::env::temp_dir().join(format!("edge-{script}-{}.txt", std::process::id()));
    std::fs::write(&file, input.join("\n")).expect("temp file");
    let output = Command::new(node_js())
        .arg(web_dir().join("test").join(script))
        .arg(&file)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
