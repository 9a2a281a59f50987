//! The supervisor thread: owns the bus of the current attempt, reports upstream events, detects
//! stalls and rebuilds the pipeline with backoff.

use super::pipeline::{self, SLOW_TEARDOWN};
use super::source::Source;
use super::{IngestConfig, Note, Shared, UpstreamEvent};
use crate::gst_util::describe_error;
use edge_core::backoff::Backoff;
use gst::prelude::*;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the supervisor looks at its channel and the stall clock between bus messages.
const POLL: Duration = Duration::from_millis(50);

pub(crate) struct Supervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) source: Source,
    pub(crate) config: IngestConfig,
    pub(crate) events: Box<dyn FnMut(UpstreamEvent) + Send>,
    pub(crate) notes_tx: Sender<Note>,
    pub(crate) notes: Receiver<Note>,
}

enum Outcome {
    Stop,
    Lost { reason: String, fatal: bool },
}

impl Supervisor {
    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new(self.config.reconnect_initial, self.config.reconnect_max);
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let outcome =
                match pipeline::build(&self.source, attempt, &self.shared, self.notes_tx.clone()) {
                    Ok(p) => self.run_attempt(&p, attempt, &mut backoff),
                    Err(e) => Outcome::Lost {
                        reason: e.to_string(),
                        fatal: true,
                    },
                };
            let Outcome::Lost { reason, fatal } = outcome else {
                break;
            };
            tracing::warn!(uri = %self.shared.uri, %reason, "upstream lost");
            self.shared.failure(&reason, fatal);
            (self.events)(UpstreamEvent::Lost { reason });
            let delay = backoff.next_delay();
            self.shared.metrics.count_reconnect();
            (self.events)(UpstreamEvent::Reconnecting {
                attempt: backoff.attempts(),
                delay,
            });
            if self.sleep_or_stop(delay) {
                break;
            }
        }
        self.shared.stopped();
    }

    fn run_attempt(
        &mut self,
        pipeline: &gst::Pipeline,
        attempt: u64,
        backoff: &mut Backoff,
    ) -> Outcome {
        let outcome = self.watch(pipeline, attempt, backoff);
        let started = Instant::now();
        // Null waits for the streaming threads to leave; a frame callback in progress finishes.
        if pipeline.set_state(gst::State::Null).is_err() {
            tracing::warn!(uri = %self.shared.uri, "pipeline refused to stop cleanly");
        }
        if started.elapsed() > SLOW_TEARDOWN {
            tracing::warn!(uri = %self.shared.uri, took_ms = started.elapsed().as_millis() as u64, "slow pipeline teardown");
        }
        outcome
    }

    fn watch(&mut self, pipeline: &gst::Pipeline, attempt: u64, backoff: &mut Backoff) -> Outcome {
        let Some(bus) = pipeline.bus() else {
            return lost("pipeline has no bus", true);
        };
        if pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus; read it below like any other error.
            tracing::debug!(uri = %self.shared.uri, "pipeline failed to start");
        }
        let started = Instant::now();
        let mut connected = false;
        loop {
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(POLL.as_millis() as u64))
            {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        return lost(describe_error(err), is_fatal(&err.error()));
                    }
                    gst::MessageView::Eos(_) => {
                        if let Source::File {
                            loop_at_eos: true, ..
                        } = self.source
                        {
                            // Running time restarts at zero; the frame side keeps pts monotonic.
                            let rewound = pipeline.seek_simple(
                                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
                                gst::ClockTime::ZERO,
                            );
                            if rewound.is_err() {
                                return lost("file ended and could not be rewound", false);
                            }
                            continue;
                        }
                        return lost("upstream ended (end of stream)", false);
                    }
                    gst::MessageView::Warning(w) => {
                        tracing::warn!(uri = %self.shared.uri, warning = %w.error(), "upstream warning");
                    }
                    _ => {}
                }
            }
            while let Ok(note) = self.notes.try_recv() {
                match note {
                    Note::Stop => return Outcome::Stop,
                    Note::Connected {
                        attempt: a,
                        format,
                        previous,
                    } if a == attempt => {
                        connected = true;
                        backoff.reset();
                        tracing::info!(uri = %self.shared.uri, %format, "upstream connected");
                        (self.events)(UpstreamEvent::Connected { format });
                        if let Some(from) = previous.filter(|p| *p != format) {
                            (self.events)(UpstreamEvent::FormatChanged { from, to: format });
                        }
                    }
                    Note::FormatChanged {
                        attempt: a,
                        from,
                        to,
                    } if a == attempt => {
                        tracing::info!(uri = %self.shared.uri, %from, %to, "upstream format changed");
                        (self.events)(UpstreamEvent::FormatChanged { from, to });
                    }
                    // Left over from an earlier attempt's last frames.
                    Note::Connected { .. } | Note::FormatChanged { .. } => {}
                }
            }
            if connected {
                let quiet = self.shared.since_last_frame();
                if quiet > self.config.stall_timeout {
                    return lost(
                        format!("upstream stalled: no frame for {} ms", quiet.as_millis()),
                        false,
                    );
                }
            } else if started.elapsed() > self.config.connect_timeout {
                return lost(
                    format!(
                        "no frame within {} ms of connecting",
                        self.config.connect_timeout.as_millis()
                    ),
                    false,
                );
            }
        }
    }

    /// Waits out the backoff delay; true when asked to stop meanwhile.
    fn sleep_or_stop(&self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.notes.recv_timeout(deadline - now) {
                Ok(Note::Stop) | Err(RecvTimeoutError::Disconnected) => return true,
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

fn lost(reason: impl Into<String>, fatal: bool) -> Outcome {
    Outcome::Lost {
        reason: reason.into(),
        fatal,
    }
}

/// Errors that retrying cannot fix: the upstream is reachable but its media is not decodable
/// with the installed plugins.
fn is_fatal(err: &gst::glib::Error) -> bool {
    matches!(
        err.kind::<gst::StreamError>(),
        Some(
            gst::StreamError::CodecNotFound
                | gst::StreamError::TypeNotFound
                | gst::StreamError::WrongType
                | gst::StreamError::NotImplemented
        )
    ) || matches!(
        err.kind::<gst::CoreError>(),
        Some(gst::CoreError::MissingPlugin)
    )
}
