//! Admission against the frame budget: before a viewer is added, predict the node's p99 latency
//! with it and admit, degrade or refuse, so a newcomer is never absorbed by slowing everyone down.
//!
//! # The model (a model, not a measurement)
//!
//! One frame's trip through the node is modelled as
//!
//! ```text
//! predicted = source + makespan(jobs, cores) + viewers * send / cores
//! job(g)    = compose_per_px * px(g) + encode_per_px * px(g)
//! makespan  = sum(jobs) / cores + (1 - 1 / cores) * max(jobs)
//! ```
//!
//! - `source` is the serial part every frame pays once (decode, upload of the source frame).
//! - Each group's compose and encode is one job; jobs run in parallel on `cores` workers. The
//!   makespan is Graham's bound for greedy list scheduling: no greedy scheduler of these jobs on
//!   `cores` workers finishes later, so the prediction errs on the safe side.
//! - Sending is per viewer and spread over the same cores.
//!
//! Every per-stage cost is a tail estimate, not a mean: an EWMA of the observed cost plus two
//! times an EWMA of its absolute deviation (the RFC 6298 retransmission-timer estimator).
//! Before a stage has been observed its cost is the configured prior.
//!
//! # Measured, then modelled
//!
//! A model misses costs (each viewer's QUIC send, the scheduler, other tenants of the machine),
//! and on a machine whose cores also decode, JIT-compile shaders and run the network, groups do
//! not overlap as well as Graham's bound says (measured on 2 cores: p99 7.2, 13.7, 18.4, 24.4 ms
//! for 1-4 720p groups, nearly proportional to the work). So once the node has measured itself
//! ([`crate::measured_latency`]), an option's expected p99 is its work times the *measured*
//! p99 per unit of work:
//!
//! ```text
//! expected = scale * (work(load + option) + pending)
//! work     = source + sum(jobs) + viewers * send          (milliseconds of CPU per frame)
//! scale    = p99 over recent frames of (node latency / work of the load it ran under)
//! ```
//!
//! `pending` is the work of viewers admitted but not seated yet. The model alone decides only
//! at start-up.
//!
//! An option fits when its expected p99 is within the budget less a headroom (default 20%):
//! a p99 measured over a few seconds on a shared machine wanders by 2-4 ms, and a node admitted
//! up to exactly its budget is over it half of the time.

use std::time::Duration;

use crate::groups::GroupId;
use crate::measured_latency::TailEstimate;

/// The default share of the budget admission keeps free.
pub const DEFAULT_HEADROOM: f64 = 0.2;

/// The default node latency budget (p99).
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(20);

/// Weight of a new observation in the mean (RFC 6298 alpha).
const MEAN_GAIN: f64 = 1.0 / 8.0;
/// Weight of a new observation in the mean deviation (RFC 6298 beta).
const DEVIATION_GAIN: f64 = 1.0 / 4.0;
/// How many mean deviations above the mean the tail estimate sits. Two, not RFC 6298's four:
/// the prediction adds the tails of several stages, and the p99 of a sum sits well below the
/// sum of p99s. Calibrated against `edge-node bench --capacity` on the 2-core CI machine (two
/// 720p groups measured 17.7 ms p99, three 20-22 ms).
const TAIL_DEVIATIONS: f64 = 2.0;

/// An output size a viewer can ask for, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rendition {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rendition {
    /// A rendition of `width` x `height` pixels.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Pixels per frame.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

impl std::fmt::Display for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A cost that learns from observations: an EWMA mean and mean deviation, read as a tail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostEstimate {
    mean: f64,
    deviation: f64,
    observed: bool,
}

impl CostEstimate {
    /// An estimate that answers `prior` until its first observation.
    pub fn with_prior(prior: f64) -> Self {
        Self {
            mean: prior.max(0.0),
            deviation: 0.0,
            observed: false,
        }
    }

    /// Folds in one observed value. Non-finite or negative values are ignored: a broken clock
    /// reading must not poison the model.
    pub fn observe(&mut self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        if !self.observed {
            // RFC 6298 initialisation: mean = first sample, deviation = half of it.
            self.mean = value;
            self.deviation = value / 2.0;
            self.observed = true;
            return;
        }
        self.deviation += DEVIATION_GAIN * ((value - self.mean).abs() - self.deviation);
        self.mean += MEAN_GAIN * (value - self.mean);
    }

    /// The tail (≈ p99) estimate: mean plus `TAIL_DEVIATIONS` (two) mean deviations.
    pub fn tail(&self) -> f64 {
        self.mean + TAIL_DEVIATIONS * self.deviation
    }

    /// The running mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }
}

/// Starting costs used until each stage has been observed. Defaults are rounded up from the
/// 720p30/1080p30 bench on the 2-core CI machine (llvmpipe compose, x264 encode), per pixel so
/// they scale to other renditions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostPriors {
    /// Serial per-frame cost (source decode and upload), milliseconds.
    pub source_ms: f64,
    /// Compose cost per output pixel, nanoseconds.
    pub compose_ns_per_px: f64,
    /// Encode cost per output pixel, nanoseconds.
    pub encode_ns_per_px: f64,
    /// Send cost per viewer per frame, milliseconds.
    pub send_ms: f64,
}

impl Default for CostPriors {
    fn default() -> Self {
        Self {
            source_ms: 1.5,
            compose_ns_per_px: 3.0,
            encode_ns_per_px: 4.5,
            send_ms: 0.05,
        }
    }
}

/// One live group as admission sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupLoad {
    /// The group, as numbered by the group table.
    pub group: GroupId,
    /// Output pixels per frame (the group's rendition).
    pub pixels: u64,
    /// Viewers receiving it.
    pub viewers: u32,
}

/// One way to serve a new viewer: the rendering it gets and whether that rendering already has
/// a group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The rendition it would get.
    pub rendition: Rendition,
    /// Whether the viewer keeps its personal items (coupon, zoom, expanded card).
    pub personal: bool,
    /// The existing group rendering exactly this, or `None` when a new group is needed.
    pub group: Option<GroupId>,
    /// Expected node p99 with this choice added: measured + `added` once the node has measured
    /// itself, the model's prediction before.
    pub predicted_p99: Duration,
    /// What this choice adds to the current load's p99: the model's difference before the node
    /// has measured itself, the work it adds times the measured scale after.
    pub added: Duration,
    /// The CPU work per frame it adds, in milliseconds ([`Admission::work_ms`]).
    pub added_work_ms: f64,
}

/// A new viewer's request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// The rendition the viewer asked for (already within operator limits).
    pub rendition: Rendition,
    /// Whether its rendering has personal items, which make it unique unless dropped.
    pub personal: bool,
}

/// What was given up in a degraded admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degradation {
    /// Personal items dropped: the viewer shares its zone's group.
    PersonalDropped,
    /// A lower rendition than asked for, personal items kept.
    LowerRendition,
    /// Both.
    PersonalDroppedAndLowerRendition,
}

/// The admission decision for one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Served as asked.
    Admit(Choice),
    /// Served, but cheaper than asked; `reason` says why in words.
    Degrade {
        to: Choice,
        what: Degradation,
        reason: String,
    },
    /// Not served; `reason` says why in words.
    Refuse { reason: String },
}

impl Decision {
    /// A low-cardinality label for the `edge_admission_decisions_total{decision}` metric.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Admit(_) => "admit",
            Decision::Degrade {
                what: Degradation::PersonalDropped,
                ..
            } => "degrade_personal",
            Decision::Degrade {
                what: Degradation::LowerRendition,
                ..
            } => "degrade_rendition",
            Decision::Degrade {
                what: Degradation::PersonalDroppedAndLowerRendition,
                ..
            } => "degrade_both",
            Decision::Refuse { .. } => "refuse",
        }
    }

    /// The choice to serve, unless refused.
    pub fn choice(&self) -> Option<&Choice> {
        match self {
            Decision::Admit(c) | Decision::Degrade { to: c, .. } => Some(c),
            Decision::Refuse { .. } => None,
        }
    }
}

/// Bad admission configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdmissionError {
    #[error("the latency budget must be above zero")]
    ZeroBudget,
    #[error("at least one core is needed")]
    NoCores,
    #[error("the rendition ladder is empty")]
    EmptyLadder,
    #[error("prior `{0}` must be a finite, non-negative number")]
    BadPrior(&'static str),
    #[error("the headroom must be at least 0 and below 1 (a share of the budget), not {0}")]
    BadHeadroom(f64),
}

/// The node's budget, its measured stage costs and its rendition ladder.
#[derive(Clone, Debug)]
pub struct Admission {
    budget: Duration,
    /// Share of the budget kept free: options must fit `budget * (1 - headroom)`.
    headroom: f64,
    cores: u32,
    /// Renditions the operator allows, largest first.
    ladder: Vec<Rendition>,
    source_ms: CostEstimate,
    compose_ns_per_px: CostEstimate,
    encode_ns_per_px: CostEstimate,
    send_ms: CostEstimate,
}

impl Admission {
    /// A model for `cores` workers and the operator's `ladder` of renditions (any order).
    pub fn new(
        budget: Duration,
        cores: u32,
        ladder: &[Rendition],
        priors: CostPriors,
    ) -> Result<Self, AdmissionError> {
        if budget.is_zero() {
            return Err(AdmissionError::ZeroBudget);
        }
        if cores == 0 {
            return Err(AdmissionError::NoCores);
        }
        if ladder.is_empty() {
            return Err(AdmissionError::EmptyLadder);
        }
        for (name, v) in [
            ("source_ms", priors.source_ms),
            ("compose_ns_per_px", priors.compose_ns_per_px),
            ("encode_ns_per_px", priors.encode_ns_per_px),
            ("send_ms", priors.send_ms),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(AdmissionError::BadPrior(name));
            }
        }
        let mut ladder = ladder.to_vec();
        ladder.sort_by_key(|r| std::cmp::Reverse(r.pixels()));
        ladder.dedup();
        Ok(Self {
            budget,
            headroom: DEFAULT_HEADROOM,
            cores,
            ladder,
            source_ms: CostEstimate::with_prior(priors.source_ms),
            compose_ns_per_px: CostEstimate::with_prior(priors.compose_ns_per_px),
            encode_ns_per_px: CostEstimate::with_prior(priors.encode_ns_per_px),
            send_ms: CostEstimate::with_prior(priors.send_ms),
        })
    }

    /// Keeps `headroom` (a share of the budget, 0 up to but not including 1) free.
    pub fn with_headroom(mut self, headroom: f64) -> Result<Self, AdmissionError> {
        if !(0.0..1.0).contains(&headroom) {
            return Err(AdmissionError::BadHeadroom(headroom));
        }
        self.headroom = headroom;
        Ok(self)
    }

    /// The node latency budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The expected p99 an option may reach: the budget less the headroom.
    pub fn limit(&self) -> Duration {
        self.budget.mul_f64(1.0 - self.headroom)
    }

    /// The serial per-frame cost (source decode and upload) took `took`.
    pub fn observe_source(&mut self, took: Duration) {
        self.source_ms.observe(took.as_secs_f64() * 1e3);
    }

    /// Composing one group's `pixels`-pixel output took `took`.
    pub fn observe_compose(&mut self, pixels: u64, took: Duration) {
        if pixels > 0 {
            self.compose_ns_per_px
                .observe(took.as_secs_f64() * 1e9 / pixels as f64);
        }
    }

    /// Encoding one group's `pixels`-pixel frame took `took`.
    pub fn observe_encode(&mut self, pixels: u64, took: Duration) {
        if pixels > 0 {
            self.encode_ns_per_px
                .observe(took.as_secs_f64() * 1e9 / pixels as f64);
        }
    }

    /// Sending one frame to one viewer took `took`.
    pub fn observe_send(&mut self, took: Duration) {
        self.send_ms.observe(took.as_secs_f64() * 1e3);
    }

    /// Predicted node p99 for this load, per the model in the module docs.
    pub fn predict(&self, load: &[GroupLoad]) -> Duration {
        let per_px_ms = (self.compose_ns_per_px.tail() + self.encode_ns_per_px.tail()) * 1e-6;
        let cores = f64::from(self.cores);
        let (mut sum, mut max, mut viewers) = (0.0_f64, 0.0_f64, 0.0_f64);
        for g in load {
            let job = per_px_ms * g.pixels as f64;
            sum += job;
            max = max.max(job);
            viewers += f64::from(g.viewers);
        }
        let makespan = sum / cores + (1.0 - 1.0 / cores) * max;
        let send = viewers * self.send_ms.tail() / cores;
        let ms = self.source_ms.tail() + makespan + send;
        Duration::from_secs_f64((ms / 1e3).clamp(0.0, 1e6))
    }

    /// CPU work per frame for this load, in milliseconds: every stage's tail cost added up, as
    /// if on one core. What the measured p99 is scaled by.
    pub fn work_ms(&self, load: &[GroupLoad]) -> f64 {
        let per_px_ms = (self.compose_ns_per_px.tail() + self.encode_ns_per_px.tail()) * 1e-6;
        let (pixels, viewers) = load.iter().fold((0.0, 0.0), |(p, v), g| {
            (p + g.pixels as f64, v + f64::from(g.viewers))
        });
        self.source_ms.tail() + per_px_ms * pixels + viewers * self.send_ms.tail()
    }

    /// Budget utilisation: predicted p99 over budget (1.0 = exactly at budget), for the
    /// `edge_admission_budget_utilization` gauge.
    pub fn utilization(&self, load: &[GroupLoad]) -> f64 {
        self.predict(load).as_secs_f64() / self.budget.as_secs_f64()
    }

    /// Decides a new viewer's request against the current `load` and, once there is one, the
    /// node's `measured` latency tail. `existing` tells, for a rendition and whether personal
    /// items are kept, which live group already renders that for this viewer (the caller builds
    /// the render key and looks it up in its group table).
    ///
    /// Options are tried in order of what the viewer loses: as asked; personal items dropped at
    /// the asked rendition; then each lower rendition of the ladder, personal items kept, then
    /// dropped. The first option within [`Self::limit`] wins. A degraded option is only taken
    /// when the request as asked does not fit, so it is always expected cheaper.
    pub fn decide(
        &self,
        load: &[GroupLoad],
        request: Request,
        existing: impl Fn(Rendition, bool) -> Option<GroupId>,
        measured: Option<TailEstimate>,
    ) -> Decision {
        let options = self.options(load, request, &existing, measured);
        let limit = self.limit();
        let asked = options[0];
        if asked.predicted_p99 <= limit {
            return Decision::Admit(asked);
        }
        let basis = self.basis(load, &asked, measured);
        if let Some(to) = options[1..].iter().find(|c| c.predicted_p99 <= limit) {
            let what = match (
                to.personal != request.personal,
                to.rendition != request.rendition,
            ) {
                (true, false) => Degradation::PersonalDropped,
                (false, _) => Degradation::LowerRendition,
                (true, true) => Degradation::PersonalDroppedAndLowerRendition,
            };
            let reason = format!(
                "as asked ({}{}) the node would reach a p99 of {:.1} ms ({basis}), over its \
                 {:.1} ms admission limit ({:.1} ms budget less headroom); serving {}{} instead \
                 (expected {:.1} ms)",
                request.rendition,
                if request.personal {
                    " with personal items"
                } else {
                    ""
                },
                ms(asked.predicted_p99),
                ms(limit),
                ms(self.budget),
                to.rendition,
                match (request.personal, to.personal) {
                    (true, false) => ", personal items dropped, in the zone's shared group",
                    (true, true) => " with personal items",
                    _ => "",
                },
                ms(to.predicted_p99),
            );
            return Decision::Degrade {
                to: *to,
                what,
                reason,
            };
        }
        let cheapest = options
            .iter()
            .min_by_key(|c| c.predicted_p99)
            .expect("options always holds the request as asked");
        Decision::Refuse {
            reason: format!(
                "node at capacity: even the cheapest option ({}{}, {}) would reach a p99 of \
                 {:.1} ms, over the {:.1} ms admission limit ({:.1} ms budget less headroom; \
                 as asked: {basis})",
                cheapest.rendition,
                if cheapest.personal {
                    " with personal items"
                } else {
                    ""
                },
                if cheapest.group.is_some() {
                    "joining an existing group"
                } else {
                    "a new group"
                },
                ms(cheapest.predicted_p99),
                ms(limit),
                ms(self.budget),
            ),
        }
    }

    /// Every way to serve `request`, as asked first, each with its expected p99.
    pub fn options(
        &self,
        load: &[GroupLoad],
        request: Request,
        existing: &impl Fn(Rendition, bool) -> Option<GroupId>,
        measured: Option<TailEstimate>,
    ) -> Vec<Choice> {
        let predicted_now = self.predict(load);
        let work_now = self.work_ms(load);
        let choice = |rendition: Rendition, personal: bool| {
            let group = existing(rendition, personal);
            let after = with_viewer(load, rendition, group);
            let added_work_ms = self.work_ms(&after) - work_now;
            let (predicted_p99, added) = match measured {
                Some(m) => (
                    m.p99_of(work_now + m.pending_work_ms + added_work_ms),
                    m.p99_of(added_work_ms.max(0.0)),
                ),
                None => {
                    let predicted = self.predict(&after);
                    (predicted, predicted.saturating_sub(predicted_now))
                }
            };
            Choice {
                rendition,
                personal,
                group,
                predicted_p99,
                added,
                added_work_ms,
            }
        };
        let lower = self
            .ladder
            .iter()
            .copied()
            .filter(|r| r.pixels() < request.rendition.pixels());
        let mut options = Vec::new();
        for rendition in std::iter::once(request.rendition).chain(lower) {
            options.push(choice(rendition, request.personal));
            if request.personal {
                options.push(choice(rendition, false));
            }
        }
        options
    }

    /// What an expected p99 was based on, in words, for decision reasons.
    fn basis(&self, load: &[GroupLoad], asked: &Choice, measured: Option<TailEstimate>) -> String {
        let Some(m) = measured else {
            return "predicted by the cost model".to_string();
        };
        let pending = if m.pending_work_ms > 0.0 {
            format!(
                " + {:.1} ms admitted since",
                ms(m.p99_of(m.pending_work_ms))
            )
        } else {
            String::new()
        };
        format!(
            "measured {:.2} ms of p99 per ms of work: {:.1} ms for the load now{pending} + {:.1} \
             ms for this viewer",
            m.p99_per_work,
            ms(m.p99_of(self.work_ms(load))),
            ms(asked.added)
        )
    }
}

/// `load` plus one viewer: in `group` when it is live, else in a new group of `rendition`.
pub fn with_viewer(
    load: &[GroupLoad],
    rendition: Rendition,
    group: Option<GroupId>,
) -> Vec<GroupLoad> {
    let mut out = load.to_vec();
    match group.and_then(|id| out.iter_mut().find(|g| g.group == id)) {
        Some(g) => g.viewers += 1,
        None => out.push(GroupLoad {
            group: GroupId(u64::MAX),
            pixels: rendition.pixels(),
            viewers: 1,
        }),
    }
    out
}

/// `load` less one viewer of `group`, e.g. to decide a key change for a viewer already
/// served: its old seat is freed once it moves. A group left without viewers is dropped, since
/// the frame path stops rendering it.
pub fn without_viewer(load: &[GroupLoad], group: GroupId) -> Vec<GroupLoad> {
    let mut out = load.to_vec();
    if let Some(i) = out.iter().position(|g| g.group == group) {
        out[i].viewers = out[i].viewers.saturating_sub(1);
        if out[i].viewers == 0 {
            out.remove(i);
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P720: Rendition = Rendition::new(1280, 720);
    const P480: Rendition = Rendition::new(854, 480);
    const P360: Rendition = Rendition::new(640, 360);

    /// A model without headroom, so the tests' arithmetic is against the budget itself.
    fn model(cores: u32) -> Admission {
        Admission::new(
            DEFAULT_BUDGET,
            cores,
            &[P360, P720, P480],
            CostPriors::default(),
        )
        .unwrap()
        .with_headroom(0.0)
        .unwrap()
    }

    fn group(id: u64, r: Rendition, viewers: u32) -> GroupLoad {
        GroupLoad {
            group: GroupId(id),
            pixels: r.pixels(),
            viewers,
        }
    }

    #[test]
    fn estimate_learns_a_tail_above_the_mean() {
        let mut c = CostEstimate::with_prior(10.0);
        assert_eq!(c.tail(), 10.0);
        for v in [2.0, 4.0, 2.0, 4.0, 2.0, 4.0] {
            c.observe(v);
        }
        assert!(c.mean() > 2.0 && c.mean() < 4.0, "{c:?}");
        assert!(c.tail() > 4.0, "the tail sits above the spread: {c:?}");
        c.observe(f64::NAN);
        c.observe(-1.0);
        assert!(c.tail().is_finite());
    }

    #[test]
    fn prediction_follows_the_documented_formula() {
        let a = model(2);
        // 720p job: (3 + 4.5) ns/px * 921600 px = 6.912 ms.
        let load = [group(0, P720, 10), group(1, P720, 5)];
        let job = 7.5e-6 * 921_600.0;
        let expected = 1.5 + (2.0 * job) / 2.0 + 0.5 * job + 15.0 * 0.05 / 2.0;
        assert!(
            (ms(a.predict(&load)) - expected).abs() < 1e-6,
            "{:?}",
            a.predict(&load)
        );
        assert!((a.utilization(&load) - expected / 20.0).abs() < 1e-6);
    }

    #[test]
    fn joining_an_existing_group_is_admitted_while_a_new_group_is_degraded() {
        let a = model(2);
        let load = [
            group(0, P720, 3),
            group(1, P720, 3),
            group(2, P720, 1),
            group(3, P720, 1),
        ];
        assert!(a.predict(&load) <= a.budget());
        // A fifth 720p group would push the prediction over 20 ms (22.4 ms).
        let shared = |r: Rendition, personal: bool| (!personal && r == P720).then_some(GroupId(0));
        let d = a.decide(
            &load,
            Request {
                rendition: P720,
                personal: true,
            },
            shared,
            None,
        );
        let Decision::Degrade { to, what, reason } = &d else {
            panic!("expected a degrade, got {d:?}");
        };
        assert_eq!(*what, Degradation::PersonalDropped);
        assert_eq!(to.group, Some(GroupId(0)));
        assert!(reason.contains("personal items dropped"), "{reason}");
        assert_eq!(d.label(), "degrade_personal");

        let d = a.decide(
            &load,
            Request {
                rendition: P720,
                personal: false,
            },
            shared,
            None,
        );
        assert!(
            matches!(
                d,
                Decision::Admit(Choice {
                    group: Some(GroupId(0)),
                    ..
                })
            ),
            "{d:?}"
        );
    }

    #[test]
    fn a_lower_rendition_is_offered_when_no_group_can_be_shared() {
        let a = model(2);
        let load = [
            group(0, P720, 3),
            group(1, P720, 3),
            group(2, P720, 1),
            group(3, P720, 1),
        ];
        let d = a.decide(
            &load,
            Request {
                rendition: P720,
                personal: true,
            },
            |_, _| None,
            None,
        );
        let Decision::Degrade { to, what, .. } = &d else {
            panic!("expected a degrade, got {d:?}");
        };
        assert_eq!(
            (*what, to.personal, to.group),
            (Degradation::LowerRendition, true, None)
        );
        assert!(to.rendition.pixels() < P720.pixels());
    }

    #[test]
    fn a_full_node_refuses_with_a_reason() {
        let a = model(1);
        let load: Vec<_> = (0..3).map(|i| group(i, P720, 1)).collect();
        let d = a.decide(
            &load,
            Request {
                rendition: P360,
                personal: false,
            },
            |_, _| None,
            None,
        );
        let Decision::Refuse { reason } = &d else {
            panic!("expected a refusal, got {d:?}");
        };
        assert!(
            reason.contains("budget") && reason.contains("640x360"),
            "{reason}"
        );
        assert_eq!(d.label(), "refuse");
    }

    #[test]
    fn observations_replace_priors() {
        let mut a = model(2);
        let load = [group(0, P720, 1)];
        let before = a.predict(&load);
        for _ in 0..50 {
            a.observe_compose(P720.pixels(), Duration::from_millis(1));
            a.observe_encode(P720.pixels(), Duration::from_millis(1));
            a.observe_source(Duration::from_micros(500));
            a.observe_send(Duration::from_micros(10));
        }
        let after = a.predict(&load);
        assert!(after < before, "{after:?} !< {before:?}");
        // Steady observations leave almost no deviation: about 0.5 + 1 + 1 + 0.01/2 ms.
        assert!((ms(after) - 2.505).abs() < 0.05, "{after:?}");
    }

    #[test]
    fn a_key_change_is_decided_without_the_viewers_old_seat() {
        let a = model(2);
        let load = [
            group(0, P720, 1),
            group(1, P720, 3),
            group(2, P720, 3),
            group(3, P720, 3),
        ];
        // The only viewer of group 0 zooms: its new group replaces group 0, so it fits.
        let freed = without_viewer(&load, GroupId(0));
        assert_eq!(freed.len(), 3);
        let d = a.decide(
            &freed,
            Request {
                rendition: P720,
                personal: true,
            },
            |_, _| None,
            None,
        );
        assert!(matches!(d, Decision::Admit(_)), "{d:?}");
        assert_eq!(without_viewer(&load, GroupId(1))[1].viewers, 2);
    }

    #[test]
    fn the_default_headroom_keeps_a_share_of_the_budget_free() {
        let a = Admission::new(DEFAULT_BUDGET, 2, &[P720], CostPriors::default()).unwrap();
        assert_eq!(a.limit(), Duration::from_millis(16));
        // Four 720p groups and a viewer more: 19.0 ms predicted, within the budget but not
        // within the limit.
        let load: Vec<_> = (0..4).map(|i| group(i, P720, 2)).collect();
        let request = Request {
            rendition: P720,
            personal: false,
        };
        let existing = |_: Rendition, _: bool| Some(GroupId(0));
        let d = a.decide(&load, request, existing, None);
        let Decision::Refuse { reason } = &d else {
            panic!("expected a refusal, got {d:?}");
        };
        assert!(reason.contains("16.0 ms admission limit"), "{reason}");
        let roomy = a.with_headroom(0.0).unwrap();
        assert!(matches!(
            roomy.decide(&load, request, existing, None),
            Decision::Admit(_)
        ));
    }

    #[test]
    fn a_measured_tail_decides_and_the_model_adds_only_the_margin() {
        let a = model(2).with_headroom(DEFAULT_HEADROOM).unwrap();
        let load = [group(0, P720, 10), group(1, P720, 1)];
        let existing =
            |r: Rendition, personal: bool| (!personal && r == P720).then_some(GroupId(0));
        let request = Request {
            rendition: P720,
            personal: true,
        };
        // The model alone (12.6 ms for a third group) admits it.
        assert!(matches!(
            a.decide(&load, request, existing, None),
            Decision::Admit(_)
        ));
        // Measured at 0.9 ms of p99 per ms of work, the node is at 15.2 ms (15.9 ms of work
        // and 1 pending): a third group (+6.3 ms) does not fit the 16 ms limit, joining the
        // shared group (+0.05 ms) does.
        let measured = TailEstimate {
            p99_per_work: 0.9,
            samples: 120,
            pending_work_ms: 1.0,
        };
        let d = a.decide(&load, request, existing, Some(measured));
        let Decision::Degrade { to, what, reason } = &d else {
            panic!("expected a degrade, got {d:?}");
        };
        assert_eq!(*what, Degradation::PersonalDropped);
        assert_eq!(to.group, Some(GroupId(0)));
        assert!(to.added < Duration::from_millis(1), "{to:?}");
        assert!(
            reason.contains("measured 0.90 ms of p99 per ms of work: 14.3 ms for the load now + 0.9 ms admitted since"),
            "{reason}"
        );
        // Over the budget as measured, nothing fits.
        let over = TailEstimate {
            p99_per_work: 1.3,
            samples: 120,
            pending_work_ms: 0.0,
        };
        assert!(matches!(
            a.decide(&load, request, existing, Some(over)),
            Decision::Refuse { .. }
        ));
    }

    #[test]
    fn bad_configuration_is_an_error() {
        let p = CostPriors::default();
        assert_eq!(
            Admission::new(Duration::ZERO, 1, &[P720], p).unwrap_err(),
            AdmissionError::ZeroBudget
        );
        assert_eq!(
            Admission::new(DEFAULT_BUDGET, 0, &[P720], p).unwrap_err(),
            AdmissionError::NoCores
        );
        assert_eq!(
            Admission::new(DEFAULT_BUDGET, 1, &[], p).unwrap_err(),
            AdmissionError::EmptyLadder
        );
        let bad = CostPriors {
            send_ms: f64::NAN,
            ..p
        };
        assert_eq!(
            Admission::new(DEFAULT_BUDGET, 1, &[P720], bad).unwrap_err(),
            AdmissionError::BadPrior("send_ms")
        );
        let a = Admission::new(DEFAULT_BUDGET, 1, &[P720], p).unwrap();
        assert_eq!(
            a.clone().with_headroom(1.0).unwrap_err(),
            AdmissionError::BadHeadroom(1.0)
        );
        assert!(a.with_headroom(f64::NAN).is_err());
    }

    /// A random stream of requests against a node whose costs drift, as in production, and
    /// that has (or has not yet) measured its own tail.
    #[derive(Clone, Debug)]
    struct Step {
        rendition: usize,
        personal: bool,
        zone: u8,
        compose_us: u64,
        encode_us: u64,
        measured_ms: Option<f64>,
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            0..3usize,
            any::<bool>(),
            0..3u8,
            200..6_000u64,
            500..9_000u64,
            proptest::option::of(0.0..3.0f64),
        )
            .prop_map(
                |(rendition, personal, zone, compose_us, encode_us, measured_ms)| Step {
                    rendition,
                    personal,
                    zone,
                    compose_us,
                    encode_us,
                    measured_ms,
                },
            )
    }

    proptest! {
        #[test]
        fn admitted_work_never_exceeds_the_budget_model(
            cores in 1..8u32,
            headroom in 0.0..0.5f64,
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let ladder = [P720, P480, P360];
            let mut a = model(cores).with_headroom(headroom).unwrap();
            let limit = a.limit();
            prop_assert!(limit <= a.budget());
            // Live groups: (zone, rendition, personal viewer id or none) -> load.
            let mut keys: Vec<(u8, Rendition, Option<usize>)> = Vec::new();
            let mut load: Vec<GroupLoad> = Vec::new();
            for (i, s) in steps.iter().enumerate() {
                a.observe_compose(P720.pixels(), Duration::from_micros(s.compose_us));
                a.observe_encode(P720.pixels(), Duration::from_micros(s.encode_us));
                let request = Request { rendition: ladder[s.rendition], personal: s.personal };
                let existing = |r: Rendition, personal: bool| {
                    let owner = personal.then_some(i);
                    keys.iter().position(|k| *k == (s.zone, r, owner)).map(|p| load[p].group)
                };
                let measured = s.measured_ms.map(|m| TailEstimate { p99_per_work: m, samples: 60, pending_work_ms: 0.0 });
                // The load may already be over budget when costs rose since earlier admissions;
                // a decision is then judged against the model with the new costs.
                let options = a.options(&load, request, &existing, measured);
                let d = a.decide(&load, request, existing, measured);
                match &d {
                    Decision::Admit(c) => {
                        prop_assert!(c.predicted_p99 <= limit);
                        prop_assert_eq!((c.rendition, c.personal), (request.rendition, request.personal));
                    }
                    Decision::Degrade { to, .. } => {
                        prop_assert!(to.predicted_p99 <= limit);
                        prop_assert!(to.predicted_p99 < options[0].predicted_p99, "degrade is cheaper");
                    }
                    Decision::Refuse { .. } => {
                        prop_assert!(options.iter().all(|c| c.predicted_p99 > limit), "refused though {options:?} fit");
                    }
                }
                if let Some(c) = d.choice() {
                    let after = with_viewer(&load, c.rendition, c.group);
                    // The work after admission, as the decision saw it: modelled from the
                    // measured tail when there is one, else the model alone.
                    let expected = match measured {
                        // Same arithmetic as the decision, so rounding cannot split them.
                        Some(m) => m.p99_of(a.work_ms(&load) + (a.work_ms(&after) - a.work_ms(&load))),
                        None => a.predict(&after),
                    };
                    prop_assert!(expected <= limit, "admitted work over the limit: {expected:?}");
                    if c.group.is_none() {
                        let id = GroupId(i as u64);
                        keys.push((s.zone, c.rendition, c.personal.then_some(i)));
                        load.push(GroupLoad { group: id, pixels: c.rendition.pixels(), viewers: 1 });
                    } else {
                        load = after;
                    }
                }
            }
        }
    }
}
