//! Warm encoders, so starting a render group never stalls the frame path.
//!
//! Bringing a GStreamer encoder pipeline to PLAYING takes tens to hundreds of milliseconds;
//! done on the frame path, every viewer would lose frames whenever anyone's rendering starts
//! (a tap, a zoom, a new zone). The pool keeps one started encoder per configuration ready and
//! starts its replacement on a thread of its own; the output sink is attached when the encoder
//! is handed out.

use edge_core::EncodedFrame;
use edge_media::{Encoder, EncoderConfig, MediaError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

type Sink = Box<dyn FnMut(EncodedFrame) + Send>;
type SinkSlot = Arc<Mutex<Option<Sink>>>;

struct Spare {
    encoder: Encoder,
    slot: SinkSlot,
}

#[derive(Default)]
struct Shelf {
    ready: HashMap<EncoderConfig, Spare>,
    warming: HashSet<EncoderConfig>,
}

#[derive(Clone, Default)]
pub struct EncoderPool {
    shelf: Arc<Mutex<Shelf>>,
}

impl EncoderPool {
    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An encoder for `config` feeding `sink`: a warm one when ready (instant), else started
    /// here. The caller warms the configuration it expects to need next.
    pub fn take(
        &self,
        config: EncoderConfig,
        sink: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Encoder, MediaError> {
        let spare = self.lock().ready.remove(&config);
        let encoder = match spare {
            Some(spare) => {
                *spare.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(sink));
                spare.encoder
            }
            None => Encoder::new(config, sink)?,
        };
        Ok(encoder)
    }

    /// Starts one spare for `config` in the background, unless one is ready or warming.
    pub fn warm(&self, config: EncoderConfig) {
        let k = config.clone();
        {
            let mut shelf = self.lock();
            if shelf.ready.contains_key(&k) || !shelf.warming.insert(k.clone()) {
                return;
            }
        }
        let pool = self.clone();
        let mark = k.clone();
        let started = std::thread::Builder::new()
            .name("encoder-warm".into())
            .spawn(move || {
                let slot: SinkSlot = Arc::default();
                let feed = slot.clone();
                let built = Encoder::new(config, move |frame| {
                    if let Some(sink) = feed.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        sink(frame);
                    }
                });
                let mut shelf = pool.lock();
                shelf.warming.remove(&k);
                match built {
                    Ok(encoder) => {
                        shelf.ready.insert(k, Spare { encoder, slot });
                    }
                    Err(e) => tracing::warn!(error = %e, "could not warm a spare encoder"),
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "could not start the encoder warm-up thread");
            self.lock().warming.remove(&mark);
        }
    }
}
