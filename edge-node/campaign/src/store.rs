//! Hot reload: the current campaigns behind an `Arc`, swapped whole when a new file validates.
//!
//! The frame path takes one snapshot per frame ([`CampaignStore::snapshot`]) and so sees a
//! reload at the next frame. An invalid file is rejected with every problem logged, and the
//! last good campaigns stay in force.

use crate::{Campaigns, Format, Problem};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Counters for metrics and the admin API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReloadStats {
    pub generation: u64,
    pub reloads_total: u64,
    pub rejections_total: u64,
    /// The problems of the most recent rejection (cleared by the next good reload).
    pub last_rejection: Option<Vec<Problem>>,
}

/// The text a campaign set was read from, kept so that what an operator reads back is what is
/// in force (not the file as it is now, which may be a broken edit that was refused).
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignSource {
    pub text: Arc<str>,
    pub format: Format,
}

/// The campaigns in force, and a generation that goes up by one with every accepted change.
pub struct CampaignStore {
    current: RwLock<(Arc<Campaigns>, u64)>,
    /// The source of the generation in force; `None` when it was built in code.
    source: RwLock<Option<(CampaignSource, u64)>>,
    reloads_total: AtomicU64,
    rejections_total: AtomicU64,
    last_rejection: Mutex<Option<Vec<Problem>>>,
}

impl CampaignStore {
    /// Starts at generation 1 with `initial`.
    pub fn new(initial: Campaigns) -> Self {
        CampaignStore {
            current: RwLock::new((Arc::new(initial), 1)),
            source: RwLock::new(None),
            reloads_total: AtomicU64::new(0),
            rejections_total: AtomicU64::new(0),
            last_rejection: Mutex::new(None),
        }
    }

    /// Reads and validates a campaign file as generation 1, keeping its text.
    pub fn load(path: &Path) -> Result<Self, Vec<Problem>> {
        let (text, place) = crate::read_file(path)?;
        let format = Format::from_path(path);
        let store = Self::new(Campaigns::parse(&text, format, &place)?);
        *store.source.write().unwrap_or_else(PoisonError::into_inner) = Some((
            CampaignSource {
                text: text.into(),
                format,
            },
            1,
        ));
        Ok(store)
    }

    /// The text of the campaigns in force and their generation; `None` when they were not
    /// read from text (the embedded default, or campaigns put in force as values).
    pub fn source(&self) -> Option<(CampaignSource, u64)> {
        // Source first, then generation: the order replacements take the two locks in.
        let source = self.source.read().unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation();
        source.clone().filter(|(_, of)| *of == generation)
    }

    /// Accepted and refused replacements so far (files and API alike).
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads_total.load(Ordering::Relaxed),
            self.rejections_total.load(Ordering::Relaxed),
        )
    }

    /// The campaigns in force and their generation, read together.
    pub fn snapshot(&self) -> (Arc<Campaigns>, u64) {
        // A poisoned lock only means a writer panicked between two whole assignments; the
        // value inside is still a complete, validated snapshot.
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (guard.0.clone(), guard.1)
    }

    pub fn current(&self) -> Arc<Campaigns> {
        self.snapshot().0
    }

    pub fn generation(&self) -> u64 {
        self.snapshot().1
    }

    /// Puts already validated campaigns in force; returns the new generation.
    pub fn replace(&self, campaigns: Campaigns) -> u64 {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        guard.1 += 1;
        guard.0 = Arc::new(campaigns);
        self.reloads_total.fetch_add(1, Ordering::Relaxed);
        *self
            .last_rejection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        guard.1
    }

    /// Validates `text` and puts it in force, or keeps the current campaigns and returns every
    /// problem (also kept for [`CampaignStore::stats`]).
    pub fn replace_from_text(
        &self,
        text: &str,
        format: Format,
        place: &str,
    ) -> Result<u64, Vec<Problem>> {
        match Campaigns::parse(text, format, place) {
            Ok(c) => {
                // The source is written under the same write lock as the campaigns, so a
                // reader never pairs a generation with another generation's text.
                let mut source = self.source.write().unwrap_or_else(PoisonError::into_inner);
                let generation = self.replace(c);
                *source = Some((
                    CampaignSource {
                        text: text.into(),
                        format,
                    },
                    generation,
                ));
                Ok(generation)
            }
            Err(problems) => {
                self.rejections_total.fetch_add(1, Ordering::Relaxed);
                *self
                    .last_rejection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(problems.clone());
                Err(problems)
            }
        }
    }

    pub fn stats(&self) -> ReloadStats {
        ReloadStats {
            generation: self.generation(),
            reloads_total: self.reloads_total.load(Ordering::Relaxed),
            rejections_total: self.rejections_total.load(Ordering::Relaxed),
            last_rejection: self
                .last_rejection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// What one poll of the file found.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    Unchanged,
    Reloaded {
        generation: u64,
    },
    Rejected(Vec<Problem>),
    /// The file could not be read (deleted, permissions); the current campaigns stay.
    Unreadable(String),
}

/// Polls one campaign file by content: a change in its bytes (not its mtime, which coarse
/// file systems and `touch` make unreliable) triggers a reload. Files are small, so reading
/// one per poll costs nothing next to a frame.
pub struct FileWatch {
    path: PathBuf,
    place: String,
    format: Format,
    last_seen: Option<u64>,
    unreadable: bool,
}

impl FileWatch {
    /// Watches `path`, taking its current content as already loaded (start it right after
    /// loading the file into the store).
    pub fn new(path: &Path) -> Self {
        let last_seen = std::fs::read(path).ok().map(|b| crate::model::fnv1a(&b));
        FileWatch {
            path: path.to_path_buf(),
            place: path.display().to_string(),
            format: Format::from_path(path),
            last_seen,
            unreadable: false,
        }
    }

    /// Checks the file once and applies a changed one to `store`, logging the outcome.
    pub fn poll(&mut self, store: &CampaignStore) -> WatchEvent {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                // Logged once per outage, not once per poll.
                if !self.unreadable {
                    tracing::warn!(path = %self.place, error = %e,
                        "campaign file unreadable; keeping generation {}", store.generation());
                }
                self.unreadable = true;
                self.last_seen = None;
                return WatchEvent::Unreadable(e.to_string());
            }
        };
        self.unreadable = false;
        let hash = crate::model::fnv1a(text.as_bytes());
        if self.last_seen == Some(hash) {
            return WatchEvent::Unchanged;
        }
        self.last_seen = Some(hash);
        match store.replace_from_text(&text, self.format, &self.place) {
            Ok(generation) => {
                tracing::info!(path = %self.place, generation, "campaigns reloaded");
                WatchEvent::Reloaded { generation }
            }
            Err(problems) => {
                let reasons: Vec<String> = problems.iter().map(Problem::to_string).collect();
                tracing::warn!(path = %self.place, problems = problems.len(),
                    reasons = %reasons.join("; "),
                    "campaign file rejected; keeping generation {}", store.generation());
                WatchEvent::Rejected(problems)
            }
        }
    }
}

/// A running file watcher; dropping it stops the thread.
pub struct FileWatcher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The thread only polls and sleeps; a panic there has been logged by the hook.
            let _ = t.join();
        }
    }
}

/// Starts a thread that polls `path` every `poll_interval` and applies changes to `store`.
pub fn watch_file(
    path: &Path,
    store: Arc<CampaignStore>,
    poll_interval: Duration,
) -> std::io::Result<FileWatcher> {
    let mut watch = FileWatch::new(path);
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("campaign-watch".into())
        .spawn(move || {
            // Sleeps on the channel so a drop of the handle wakes and ends the thread at once.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(poll_interval) {
                watch.poll(&store);
            }
        })?;
    Ok(FileWatcher {
        stop: Some(stop),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const GOOD: &str = "[[zones]]\nid = \"default\"\n";
    const GOOD_TWO: &str = "[[zones]]\nid = \"default\"\n[[zones]]\nid = \"mall\"\n";
    const BAD: &str = "[[zones]]\nid = \"default\"\n[[campaigns]]\nid = \"c\"\nzones = [\"nowhere\"]\noverlays = [\"none\"]\n";

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edge-campaign-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("campaigns.toml")
    }

    #[test]
    fn the_text_in_force_is_kept_and_a_refused_file_changes_nothing() {
        let path = temp_file("source.toml");
        std::fs::write(&path, GOOD).unwrap();
        let store = CampaignStore::load(&path).unwrap();
        assert_eq!(store.source().unwrap().0.text.as_ref(), GOOD);
        let mut watch = FileWatch::new(&path);
        std::fs::write(&path, "[[zones]]\nid = 5\n").unwrap();
        assert!(matches!(watch.poll(&store), WatchEvent::Rejected(_)));
        assert_eq!(store.reload_counts(), (0, 1), "the refused file is counted");
        let (source, generation) = store.source().unwrap();
        assert_eq!(
            (source.text.as_ref(), generation),
            (GOOD, 1),
            "what is in force"
        );
        let newer = "[[zones]]\nid = \"mall\"\n[[zones]]\nid = \"default\"\n";
        std::fs::write(&path, newer).unwrap();
        assert_eq!(watch.poll(&store), WatchEvent::Reloaded { generation: 2 });
        assert_eq!(store.source().unwrap().0.text.as_ref(), newer);
        assert_eq!(store.reload_counts(), (1, 1));
        store.replace(Campaigns::embedded());
        assert_eq!(
            store.source(),
            None,
            "campaigns put in force as values have no text"
        );
    }

    #[test]
    fn an_invalid_replacement_keeps_the_last_good_campaigns() {
        let store = CampaignStore::new(Campaigns::parse(GOOD, Format::Toml, "a.toml").unwrap());
        assert_eq!(store.generation(), 1);
        let problems = store
            .replace_from_text(BAD, Format::Toml, "b.toml")
            .unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(store.generation(), 1);
        assert_eq!(store.current().zones.len(), 1);
        assert_eq!(store.stats().rejections_total, 1);
        assert_eq!(store.stats().last_rejection.as_ref().map(Vec::len), Some(2));
        assert_eq!(
            store.replace_from_text(GOOD_TWO, Format::Toml, "c.toml"),
            Ok(2)
        );
        assert_eq!(store.current().zones.len(), 2);
        let stats = store.stats();
        assert_eq!((stats.reloads_total, stats.last_rejection), (1, None));
    }

    #[test]
    fn polling_applies_changes_and_rejects_bad_files() {
        let path = temp_file("poll");
        std::fs::write(&path, GOOD).unwrap();
        let store = CampaignStore::new(Campaigns::load(&path).unwrap());
        let mut watch = FileWatch::new(&path);
        assert_eq!(watch.poll(&store), WatchEvent::Unchanged);

        std::fs::write(&path, BAD).unwrap();
        let WatchEvent::Rejected(problems) = watch.poll(&store) else {
            panic!("a bad file is rejected")
        };
        assert!(
            problems[0]
                .place
                .starts_with(&format!("{}:5:", path.display())),
            "{problems:?}"
        );
        assert_eq!(
            watch.poll(&store),
            WatchEvent::Unchanged,
            "the same bad bytes are not retried"
        );
        assert_eq!(store.generation(), 1);

        std::fs::write(&path, GOOD_TWO).unwrap();
        assert_eq!(watch.poll(&store), WatchEvent::Reloaded { generation: 2 });
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(watch.poll(&store), WatchEvent::Unreadable(_)));
        assert_eq!(
            store.current().zones.len(),
            2,
            "a vanished file keeps the campaigns"
        );
        std::fs::write(&path, GOOD_TWO).unwrap();
        assert_eq!(
            watch.poll(&store),
            WatchEvent::Reloaded { generation: 3 },
            "it came back"
        );
    }

    #[test]
    fn the_watch_thread_reloads_and_stops_on_drop() {
        let path = temp_file("thread");
        std::fs::write(&path, GOOD).unwrap();
        let store = Arc::new(CampaignStore::new(Campaigns::load(&path).unwrap()));
        let watcher = watch_file(&path, store.clone(), Duration::from_millis(10)).unwrap();
        std::fs::write(&path, BAD).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.stats().rejections_total == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(store.stats().rejections_total, 1);
        assert_eq!(store.generation(), 1);
        std::fs::write(&path, GOOD_TWO).unwrap();
        while store.generation() == 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(store.generation(), 2);
        // Dropping the watcher joins its thread: it must return, not hang.
        let (dropped, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(watcher);
            let _ = dropped.send(());
        });
        done.recv_timeout(Duration::from_secs(30))
            .expect("drop ends the watch thread");
    }
}
