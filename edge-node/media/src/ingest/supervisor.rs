//! The supervisor thread: owns the bus of the current attempt, reports upstream events, detects
//! stalls and rebuilds the pipeline with backoff.

use super::pipeline::{self, SLOW_TEARDOWN};
use super::resume::{ended_early, Resume};
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
    /// Where a `file://` upstream is read on from after damage in it.
    pub(crate) resume: Resume,
}

enum Outcome {
    Stop,
    Lost {
        reason: String,
        fatal: bool,
    },
    /// A file's demuxer stalled, failed or ended before the file did.
    Damaged {
        reason: String,
    },
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
            let (reason, fatal) = match outcome {
                Outcome::Stop => break,
                Outcome::Lost { reason, fatal } => (reason, fatal),
                Outcome::Damaged { reason } => (reason, false),
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
        let mut outcome = self.watch(pipeline, attempt, backoff);
        if let Source::File { .. } = self.source {
            outcome = self.judge_file(pipeline, outcome);
        }
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

    /// Where a file attempt that did not play to the file's end stopped, and where the next
    /// one starts: a stall, an error or an early end of stream part-way through a file is
    /// damage to read on past, not a reason to show its first seconds again.
    fn judge_file(&mut self, pipeline: &gst::Pipeline, outcome: Outcome) -> Outcome {
        let reached = self.shared.take_position();
        let length = file_length(pipeline);
        let reason = match outcome {
            Outcome::Stop => return Outcome::Stop,
            Outcome::Lost { fatal: true, .. } => return outcome,
            Outcome::Lost { reason, .. } | Outcome::Damaged { reason } => reason,
        };
        let ended = reason == END_OF_STREAM;
        if ended && !ended_early(reached.or(self.resume.target()), length) {
            self.resume.at_end();
            return lost(reason, false);
        }
        self.resume.after_damage(reached, length);
        let at = match (reached, length) {
            (Some(r), Some(l)) => {
                format!("at {:.2} s of {:.2} s", r.as_secs_f64(), l.as_secs_f64())
            }
            (Some(r), None) => format!("at {:.2} s", r.as_secs_f64()),
            (None, _) => "with no new frame".into(),
        };
        let from = self.resume.target().unwrap_or_default().as_secs_f64();
        let reason = format!("{reason} {at}; reading on from {from:.2} s");
        Outcome::Damaged { reason }
    }

    fn watch(&mut self, pipeline: &gst::Pipeline, attempt: u64, backoff: &mut Backoff) -> Outcome {
        let Some(bus) = pipeline.bus() else {
            return lost("pipeline has no bus", true);
        };
        // A file read on past damage prerolls paused, seeks, and only then plays, so not one
        // frame from its start goes out.
        let mut resume_at = match self.source {
            Source::File { .. } => self.resume.target(),
            _ => None,
        };
        let first_state = if resume_at.is_some() {
            gst::State::Paused
        } else {
            gst::State::Playing
        };
        if pipeline.set_state(first_state).is_err() {
            // The reason is on the bus; read it below like any other error.
            tracing::debug!(uri = %self.shared.uri, "pipeline failed to start");
        }
        // A local file read on past damage has its next picture at once, or the damage
        // goes on: no network to wait for.
        let connect_timeout = if resume_at.is_some() {
            self.config.stall_timeout
        } else {
            self.config.connect_timeout
        };
        let started = Instant::now();
        let mut connected = false;
        loop {
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(POLL.as_millis() as u64))
            {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        return lost(describe_error(err), is_fatal(&err.error()));
                    }
                    gst::MessageView::AsyncDone(_) => {
                        if let Some(at) = resume_at.take() {
                            self.read_on_from(pipeline, at);
                        }
                    }
                    gst::MessageView::Eos(_) => {
                        if let Source::File {
                            loop_at_eos: true, ..
                        } = self.source
                        {
                            let reached = self.shared.position();
                            if ended_early(reached.or(self.resume.target()), file_length(pipeline))
                            {
                                return lost(END_OF_STREAM, false);
                            }
                            self.resume.at_end();
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
                        return lost(END_OF_STREAM, false);
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
            } else if started.elapsed() > connect_timeout {
                return lost(
                    format!(
                        "no frame within {} ms of connecting",
                        connect_timeout.as_millis()
                    ),
                    false,
                );
            }
        }
    }

    /// Seeks a prerolled file to the first keyframe at or after `at`, then plays it.
    fn read_on_from(&self, pipeline: &gst::Pipeline, at: Duration) {
        let flags = gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_AFTER;
        let position = gst::ClockTime::from_nseconds(at.as_nanos() as u64);
        match pipeline.seek_simple(flags, position) {
            Ok(()) => {
                tracing::info!(uri = %self.shared.uri, at_s = at.as_secs_f64(), "reading the file on past its damage");
            }
            Err(e) => {
                tracing::warn!(uri = %self.shared.uri, error = %e, "could not seek past the damage; playing from the start");
            }
        }
        if pipeline.set_state(gst::State::Playing).is_err() {
            tracing::debug!(uri = %self.shared.uri, "pipeline failed to start");
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

const END_OF_STREAM: &str = "upstream ended (end of stream)";

/// A file's duration, when its demuxer knows it.
fn file_length(pipeline: &gst::Pipeline) -> Option<Duration> {
    pipeline
        .query_duration::<gst::ClockTime>()
        .map(|d| Duration::from_nanos(d.nseconds()))
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
