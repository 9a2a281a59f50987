//! What an operator reads in the log when a campaign file changes. Alone in its own test
//! binary: tracing caches per-callsite interest process-wide, so a thread-local subscriber
//! beside other tests' threads can miss events.

use edge_campaign::{CampaignStore, Campaigns, FileWatch};
use std::sync::{Arc, Mutex};

const GOOD: &str = "[[zones]]\nid = \"default\"\n";
const GOOD_TWO: &str = "[[zones]]\nid = \"default\"\n[[zones]]\nid = \"mall\"\n";
const BAD: &str = "[[zones]]\nid = \"default\"\n[[campaigns]]\nid = \"c\"\nzones = [\"nowhere\"]\noverlays = [\"none\"]\n";

fn temp_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("edge-campaign-log-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("campaigns.toml")
}

/// Collects what tracing writes, to check what an operator reads in the log.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn reloads_and_rejections_are_logged_with_their_reasons() {
    let path = temp_file("log");
    std::fs::write(&path, GOOD).unwrap();
    let store = CampaignStore::new(Campaigns::load(&path).unwrap());
    let mut watch = FileWatch::new(&path);
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        std::fs::write(&path, BAD).unwrap();
        watch.poll(&store);
        std::fs::write(&path, GOOD_TWO).unwrap();
        watch.poll(&store);
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("rejected; keeping generation 1"),
        "{text}"
    );
    assert!(
        lines[0].contains("unknown zone") && lines[0].contains("unknown overlay"),
        "every reason: {text}"
    );
    assert!(lines[0].contains(":5:"), "reasons carry line:col: {text}");
    assert!(
        lines[1].contains("INFO")
            && lines[1].contains("campaigns reloaded")
            && lines[1].contains("generation=2"),
        "{text}"
    );
}
