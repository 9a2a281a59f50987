//! Admission's view of the running node: the live groups and their render keys (refreshed by
//! the frame path every frame), the cost model, and the node's measured latency per unit of
//! work. Requests are decided here on the network task; the frame path only reports.

use crate::render_groups::RenderKey;
use edge_core::admission::{Admission, Decision, GroupLoad, Rendition, Request};
use edge_core::groups::GroupId;
use edge_core::measured_latency::MeasuredLatency;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Node latencies kept: 10 s of one group at 30 fps, 2.5 s of four.
const RECENT_LATENCIES: usize = 300;
/// The measurement is trusted from this many samples: fewer, and the "p99" is the single worst
/// frame, which on a shared machine is a scheduling hiccup twice the real tail.
const MIN_SAMPLES: usize = 150;
/// A new group's first second is left out of the measurement: its encoder's first frames and
/// the pool warming a spare encoder are slow once (measured: 27-30 ms frames on 2 cores).
const GROUP_START_QUIET: Duration = Duration::from_secs(1);
/// An admitted viewer is in the reported load from the next frame on; until then its work
/// counts as pending.
const SEAT: Duration = Duration::from_millis(200);

/// A rendition height as admission counts it: 16:9 pixels, even width. Admission is decided
/// before the upstream's own aspect is known to the router, so it assumes the common one.
pub fn admission_rendition(height: u32) -> Rendition {
    Rendition::new((height * 16 / 9) & !1, height)
}

pub struct AdmissionGate {
    inner: Mutex<GateState>,
    /// `false` (`[budget] admission = false`): every request is admitted as asked, so a bench
    /// can measure the node's real cost past what the model would allow.
    enforce: bool,
    started: Instant,
}

struct GateState {
    model: Admission,
    load: Vec<GroupLoad>,
    /// Every live group by what it renders, so a request finds the group it would join.
    groups: HashMap<RenderKey, GroupId>,
    measured: MeasuredLatency,
}

impl GateState {
    fn work_ms(&self) -> f64 {
        self.model.work_ms(&self.load)
    }
}

impl AdmissionGate {
    pub fn new(model: Admission) -> Self {
        Self::with_quiet(model, GROUP_START_QUIET)
    }

    /// With `quiet` after a group start instead of [`GROUP_START_QUIET`].
    fn with_quiet(model: Admission, quiet: Duration) -> Self {
        Self {
            inner: Mutex::new(GateState {
                model,
                load: Vec::new(),
                groups: HashMap::new(),
                measured: MeasuredLatency::new(RECENT_LATENCIES, MIN_SAMPLES, quiet, SEAT),
            }),
            enforce: true,
            started: Instant::now(),
        }
    }

    /// With `enforce` false every request is admitted as asked (still counted as `admit`).
    pub fn enforcing(mut self, enforce: bool) -> Self {
        self.enforce = enforce;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The frame path's report: live groups and their keys. Returns the budget utilisation:
    /// the expected p99 (measured, else modelled) over the budget.
    pub fn update(&self, load: Vec<GroupLoad>, groups: HashMap<RenderKey, GroupId>) -> f64 {
        let now = self.started.elapsed();
        let mut state = self.lock();
        let started = load
            .iter()
            .any(|g| !state.load.iter().any(|old| old.group == g.group));
        if started {
            state.measured.group_started(now);
        }
        state.load = load;
        state.groups = groups;
        let work = state.work_ms();
        let budget = state.model.budget();
        match state.measured.estimate(now) {
            Some(e) => e.p99_of(work + e.pending_work_ms).as_secs_f64() / budget.as_secs_f64(),
            None => state.model.utilization(&state.load),
        }
    }

    /// Feeds a measured cost into the model (compose, encode, send).
    pub fn observe(&self, record: impl FnOnce(&mut Admission)) {
        record(&mut self.lock().model);
    }

    /// One encoded frame's node latency, under the load reported for that frame: what
    /// admission is judged against, since a model can be wrong and the budget is about what
    /// is measured.
    pub fn record_node_latency(&self, latency: Duration) {
        let now = self.started.elapsed();
        let mut state = self.lock();
        let work = state.work_ms();
        state.measured.record(now, latency, work);
    }

    /// Decides `request`; `key_for(rendition, personal)` is the render key the viewer would
    /// have with that option, to find the group it would join.
    pub fn decide(
        &self,
        request: Request,
        key_for: impl Fn(Rendition, bool) -> RenderKey,
    ) -> Decision {
        let now = self.started.elapsed();
        let mut state = self.lock();
        let measured = state.measured.estimate(now);
        let existing = |rendition: Rendition, personal: bool| {
            state.groups.get(&key_for(rendition, personal)).copied()
        };
        if !self.enforce {
            let asked = state.model.options(&state.load, request, &existing, None);
            return Decision::Admit(asked[0]);
        }
        let decision = state.model.decide(&state.load, request, existing, measured);
        // Until the viewer is seated (and so in the reported load), its work is pending.
        if let Some(choice) = decision.choice() {
            state.measured.admitted(now, choice.added_work_ms);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_campaign::RenderKeyPart;
    use edge_core::admission::Choice;

    const P720: Rendition = Rendition::new(1280, 720);

    fn key(zone: &str, personal: bool) -> RenderKey {
        RenderKey {
            zone: zone.into(),
            campaign: RenderKeyPart {
                overlay_ids: Vec::new(),
                fingerprint: 0,
            },
            coupon: personal.then(|| "Ada, 20% off".to_string()),
            expanded: None,
            zoom_of: None,
            follow_face: false,
            height: 720,
        }
    }

    /// A gate that measures a new group's frames at once: the tests have no second to wait.
    fn gate(budget_ms: u64) -> AdmissionGate {
        AdmissionGate::with_quiet(
            Admission::new(
                Duration::from_millis(budget_ms),
                2,
                &[P720],
                Default::default(),
            )
            .unwrap(),
            Duration::ZERO,
        )
    }

    #[test]
    fn admission_off_admits_what_the_model_would_refuse() {
        let request = Request {
            rendition: P720,
            personal: true,
        };
        let keys = |_: Rendition, personal: bool| key("default", personal);
        assert!(matches!(
            gate(1).decide(request, keys),
            Decision::Refuse { .. }
        ));
        match gate(1).enforcing(false).decide(request, keys) {
            Decision::Admit(choice) => {
                assert!(choice.personal && choice.rendition == request.rendition);
                assert!(choice.predicted_p99 > Duration::from_millis(1));
            }
            other => panic!("admission off must admit as asked, got {other:?}"),
        }
    }

    #[test]
    fn a_personal_request_joins_its_live_personal_group() {
        let gate = gate(20);
        let group = GroupLoad {
            group: GroupId(7),
            pixels: P720.pixels(),
            viewers: 1,
        };
        gate.update(
            vec![group],
            HashMap::from([(key("default", true), GroupId(7))]),
        );
        let request = Request {
            rendition: P720,
            personal: true,
        };
        let d = gate.decide(request, |_, personal| key("default", personal));
        let Decision::Admit(choice) = d else {
            panic!("expected an admit, got {d:?}");
        };
        assert_eq!(choice.group, Some(GroupId(7)), "the coupon group is shared");
    }

    #[test]
    fn a_node_measured_near_its_budget_starts_no_new_group() {
        let gate = gate(20);
        let request = Request {
            rendition: P720,
            personal: false,
        };
        let one_group = GroupLoad {
            group: GroupId(1),
            pixels: P720.pixels(),
            viewers: 1,
        };
        let report = || {
            gate.update(
                vec![one_group],
                HashMap::from([(key("mall", false), GroupId(1))]),
            )
        };
        report();
        for _ in 0..MIN_SAMPLES {
            gate.record_node_latency(Duration::from_millis(8));
        }
        // Measured at 8 ms, one more viewer in the live group fits.
        let joins = gate.decide(request, |_, personal| key("mall", personal));
        assert!(
            matches!(
                joins,
                Decision::Admit(Choice {
                    group: Some(GroupId(1)),
                    ..
                })
            ),
            "{joins:?}"
        );
        // Over the limit (16 ms) as measured: no new group, whatever the model says.
        for _ in 0..RECENT_LATENCIES {
            gate.record_node_latency(Duration::from_millis(18));
        }
        report();
        match gate.decide(request, |_, personal| key("default", personal)) {
            Decision::Refuse { reason } => {
                assert!(reason.contains("18.0 ms for the load now"), "{reason}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn admissions_count_until_measured() {
        let gate = gate(20);
        let keys = |_: Rendition, personal: bool| key("default", personal);
        let other_groups = (0..2)
            .map(|i| GroupLoad {
                group: GroupId(i),
                pixels: P720.pixels(),
                viewers: 1,
            })
            .collect();
        gate.update(other_groups, HashMap::new());
        for _ in 0..MIN_SAMPLES {
            gate.record_node_latency(Duration::from_millis(10));
        }
        let request = Request {
            rendition: P720,
            personal: true,
        };
        // Two groups measured at 10 ms: a third adds its share of the work (about 4.5 ms), so
        // 14.5 ms fits the 16 ms limit. It is not seated yet, so the next one is judged at 19.
        let decisions: Vec<_> = (0..3).map(|_| gate.decide(request, keys).label()).collect();
        assert_eq!(decisions, ["admit", "refuse", "refuse"], "{decisions:?}");
    }
}
