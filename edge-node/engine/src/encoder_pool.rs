//! Warm encoders, so starting a render group never stalls the frame path.
//!
//! Bringing a GStreamer encoder pipeline to PLAYING takes tens to hundreds of milliseconds;
//! done on the frame path, every viewer would lose frames whenever anyone's rendering starts
//! (a tap, a zoom, a new zone). The pool keeps started encoders ready and starts more on
//! threads of their own; a group whose encoder is not ready yet waits for it (its viewers stay
//! where they are) instead of stopping everyone's frames. The output sink is attached when the
//! encoder is handed out.

use edge_core::EncodedFrame;
use edge_media::{Encoder, EncoderConfig, MediaError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

type Sink = Box<dyn FnMut(EncodedFrame) + Send>;
type SinkSlot = Arc<Mutex<Option<Sink>>>;

/// Ready encoders kept per shape; more are dropped as they finish starting.
const MOST_READY: usize = 2;

/// After an encoder of a shape failed to start, how long before another is tried.
const RETRY_AFTER: Duration = Duration::from_secs(1);

struct Spare {
    /// Its worker threads: a spare of the same shape serves whatever the group asked for.
    threads: u32,
    encoder: Encoder,
    slot: SinkSlot,
}

/// Ready and starting encoders, by shape: the configuration but for its thread count, which
/// only sizes the encoder's share of the cores.
#[derive(Default)]
struct Shelf {
    ready: HashMap<EncoderConfig, Vec<Spare>>,
    warming: HashMap<EncoderConfig, usize>,
    failed_at: HashMap<EncoderConfig, Instant>,
}

#[derive(Clone, Default)]
pub struct EncoderPool {
    shelf: Arc<Mutex<Shelf>>,
}

fn shape(config: &EncoderConfig) -> EncoderConfig {
    EncoderConfig {
        threads: 0,
        ..config.clone()
    }
}

impl EncoderPool {
    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether [`EncoderPool::take`] has an encoder of `config`'s shape ready.
    pub fn is_ready(&self, config: &EncoderConfig) -> bool {
        self.lock()
            .ready
            .get(&shape(config))
            .is_some_and(|spares| !spares.is_empty())
    }

    /// An encoder for `config` feeding `sink`: a ready one of its shape when there is one
    /// (instant; the one nearest in threads), else started here (which takes a while).
    pub fn take(
        &self,
        config: EncoderConfig,
        sink: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Encoder, MediaError> {
        let spare = {
            let mut shelf = self.lock();
            shelf.ready.get_mut(&shape(&config)).and_then(|spares| {
                let nearest = (0..spares.len())
                    .min_by_key(|&i| spares[i].threads.abs_diff(config.threads))?;
                Some(spares.swap_remove(nearest))
            })
        };
        let encoder = match spare {
            Some(spare) => {
                *spare.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(sink));
                spare.encoder
            }
            None => Encoder::new(config, sink)?,
        };
        Ok(encoder)
    }

    /// Whether an encoder of `config`'s shape is being started.
    pub fn is_warming(&self, config: &EncoderConfig) -> bool {
        self.lock().warming.contains_key(&shape(config))
    }

    /// Keeps one spare of `config`'s shape coming: starts one unless one is ready or starting.
    pub fn warm(&self, config: EncoderConfig) {
        {
            let shelf = self.lock();
            let key = shape(&config);
            if shelf.ready.get(&key).is_some_and(|s| !s.is_empty())
                || shelf.warming.get(&key).is_some_and(|&n| n > 0)
            {
                return;
            }
        }
        self.warm_another(config);
    }

    /// Starts one more encoder of `config` in the background, whatever is ready or starting:
    /// for a group that waits for one of its own.
    /// Not within [`RETRY_AFTER`] of one of its shape failing to start.
    pub fn warm_another(&self, config: EncoderConfig) {
        let key = shape(&config);
        {
            let mut shelf = self.lock();
            if shelf
                .failed_at
                .get(&key)
                .is_some_and(|at| at.elapsed() < RETRY_AFTER)
            {
                return;
            }
            *shelf.warming.entry(key.clone()).or_default() += 1;
        }
        let pool = self.clone();
        let mark = key.clone();
        let started = std::thread::Builder::new()
            .name("encoder-warm".into())
            .spawn(move || {
                let slot: SinkSlot = Arc::default();
                let feed = slot.clone();
                let threads = config.threads;
                let built = Encoder::new(config, move |frame| {
                    if let Some(sink) = feed.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        sink(frame);
                    }
                });
                let mut shelf = pool.lock();
                shelf.done_warming(&key);
                let surplus = match built {
                    Ok(encoder) => {
                        let spares = shelf.ready.entry(key).or_default();
                        if spares.len() < MOST_READY {
                            spares.push(Spare {
                                threads,
                                encoder,
                                slot,
                            });
                            None
                        } else {
                            Some(encoder)
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start an encoder");
                        shelf.failed_at.insert(key, Instant::now());
                        None
                    }
                };
                // Stopping a pipeline takes a while: not while others wait for the shelf.
                drop(shelf);
                drop(surplus);
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the encoder warm-up thread");
            self.lock().done_warming(&mark);
        }
    }
}

impl Shelf {
    fn done_warming(&mut self, key: &EncoderConfig) {
        if let Some(n) = self.warming.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.warming.remove(key);
            }
        }
    }
}
