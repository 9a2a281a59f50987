//! Where each viewer goes: auth, zone (MEC → lat/lon → hint → default), rendition, personal
//! items and admission against the frame budget, decided on the network task before the
//! session is accepted. The viewer then waits in the lobby (a rendering that is never
//! published) until the frame path seats it in its render group, one frame later.

use crate::auth::{zone_allowed, ViewerAuth};
use crate::telemetry::{AdmissionDecision, MecOutcome, Telemetry};
use crate::viewer_control::{self, ControlMessage, NormalizedRect};
use crate::viewers::{Viewer, ViewerDirectory};
use edge_campaign::{CampaignStore, Campaigns, MecFix, ZoneInputs, ZoneSource};
use edge_core::admission::{Admission, Decision, GroupLoad, Rendition, Request};
use edge_core::groups::GroupId;
use edge_deliver::{Refusal, SessionRouter, ViewerRequest};
use edge_location::{LocationClient, LocationError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The rendering every viewer is routed to first; never published.
pub const LOBBY: &str = "lobby";

/// Longest display name taken for a coupon.
const MAX_NAME_CHARS: usize = 32;

/// Admission's view of the node, refreshed by the frame path every frame.
pub struct AdmissionGate {
    inner: Mutex<GateState>,
    /// `false` (`[budget] admission = false`): every request is admitted as asked, so a bench
    /// can measure the node's real cost past what the model would allow.
    enforce: bool,
}

struct GateState {
    model: Admission,
    load: Vec<GroupLoad>,
    /// Live shared (non-personal) groups by (zone, output height).
    shared: HashMap<(String, u32), GroupId>,
    /// The node's most recent node latencies (ms), newest last: what the model is checked
    /// against, since a model can be wrong and the budget is about what is measured.
    recent_ms: std::collections::VecDeque<f64>,
}

/// Node latencies kept for the measured guard: a few seconds of frames at 30 fps.
const RECENT_LATENCIES: usize = 300;
/// The guard acts only on this many samples or more (not on a cold start's first frames).
const MIN_RECENT_LATENCIES: usize = 60;

impl AdmissionGate {
    pub fn new(model: Admission) -> Self {
        Self {
            inner: Mutex::new(GateState {
                model,
                load: Vec::new(),
                shared: HashMap::new(),
                recent_ms: std::collections::VecDeque::with_capacity(RECENT_LATENCIES),
            }),
            enforce: true,
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

    /// The frame path's report: live groups, and which of them are zones' shared groups.
    pub fn update(&self, load: Vec<GroupLoad>, shared: HashMap<(String, u32), GroupId>) -> f64 {
        let mut state = self.lock();
        state.load = load;
        state.shared = shared;
        state.model.utilization(&state.load)
    }

    /// Feeds a measured cost into the model (compose, encode, send).
    pub fn observe(&self, record: impl FnOnce(&mut Admission)) {
        record(&mut self.lock().model);
    }

    /// One encoded frame's node latency, for the measured guard in [`Self::decide`].
    pub fn record_node_latency(&self, latency: std::time::Duration) {
        let mut state = self.lock();
        if state.recent_ms.len() == RECENT_LATENCIES {
            state.recent_ms.pop_front();
        }
        state.recent_ms.push_back(latency.as_secs_f64() * 1e3);
    }

    /// The p99 of the recent node latencies, once there are enough of them.
    fn measured_p99_ms(state: &GateState) -> Option<f64> {
        if state.recent_ms.len() < MIN_RECENT_LATENCIES {
            return None;
        }
        let mut sorted: Vec<f64> = state.recent_ms.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
    }

    fn decide(&self, zone: &str, request: Request) -> Decision {
        let state = self.lock();
        let existing = |rendition: Rendition, personal: bool| {
            (!personal)
                .then(|| {
                    state
                        .shared
                        .get(&(zone.to_string(), rendition.height))
                        .copied()
                })
                .flatten()
        };
        if !self.enforce {
            let asked = state.model.options(&state.load, request, &existing);
            return Decision::Admit(asked[0]);
        }
        // The model predicts; the measurement decides when they disagree: a node already over
        // its budget starts no new group (a new encode), whatever the model says.
        let decision = state.model.decide(&state.load, request, existing);
        let budget_ms = state.model.budget().as_secs_f64() * 1e3;
        let new_group = decision.choice().is_some_and(|c| c.group.is_none());
        if let Some(p99) = Self::measured_p99_ms(&state).filter(|p99| *p99 > budget_ms) {
            if new_group {
                return Decision::Refuse {
                    reason: format!(
                        "node at capacity: measured node latency p99 {p99:.1} ms is over its {budget_ms:.1} ms budget"
                    ),
                };
            }
        }
        decision
    }
}

/// Looks viewers up in the MEC platform's Location API, off the frame path.
pub struct MecLookup {
    pub client: Arc<LocationClient>,
    pub runtime: tokio::runtime::Handle,
}

pub struct NodeRouter {
    pub telemetry: Arc<Telemetry>,
    pub auth: Option<ViewerAuth>,
    pub campaigns: Arc<CampaignStore>,
    pub directory: Arc<ViewerDirectory>,
    pub admission: Arc<AdmissionGate>,
    pub mec: Option<Arc<MecLookup>>,
}

/// A rendition height as admission counts it: 16:9 pixels, even width. Admission is decided
/// before the upstream's own aspect is known to the router, so it assumes the common one.
pub fn admission_rendition(height: u32) -> Rendition {
    Rendition::new((height * 16 / 9) & !1, height)
}

impl SessionRouter for NodeRouter {
    fn route(&self, request: &ViewerRequest) -> Result<String, Refusal> {
        if self.telemetry.readiness.draining.load(Ordering::Relaxed) {
            return Err(Refusal::new(
                "node draining: reconnect to another edge node",
            ));
        }
        let claims = match &self.auth {
            Some(auth) => Some(
                auth.verify(request.query_value("token").as_deref())
                    .map_err(Refusal::new)?,
            ),
            None => None,
        };
        let campaigns = self.campaigns.current();
        let lat_lon = lat_lon(request).map_err(Refusal::new)?;
        let hint = request.query_value("zone");
        if let (Some(claims), Some(zone)) = (&claims, &hint) {
            if !zone_allowed(claims, zone) {
                return Err(Refusal::new(format!(
                    "auth: token does not allow zone {zone:?}"
                )));
            }
        }
        let decision = campaigns.resolve_zone(&ZoneInputs {
            mec: None,
            lat_lon,
            hint,
        });
        if let Some(note) = &decision.note {
            tracing::info!(session = request.session_id, %note, "zone hint not used");
        }
        if let Some(claims) = &claims {
            if !zone_allowed(claims, &decision.zone_id) {
                return Err(Refusal::new(format!(
                    "auth: token does not allow zone {:?}",
                    decision.zone_id
                )));
            }
        }
        let rendition_height = rendition(&campaigns, request).map_err(Refusal::new)?;
        let name = match &claims {
            Some(claims) => claims.name.clone(),
            None => request.query_value("name"),
        }
        .map(|n| clean_name(&n))
        .filter(|n| !n.is_empty());
        let follow_face = request.query_value("zoom").as_deref() == Some("follow-face");
        let zoom = match request.query_value("zoom") {
            Some(text) if !follow_face => Some(parse_zoom(&text).map_err(Refusal::new)?),
            _ => None,
        };

        let personal = name.is_some() || zoom.is_some();
        let admission = self.admission.decide(
            &decision.zone_id,
            Request {
                rendition: admission_rendition(rendition_height),
                personal,
            },
        );
        let (personal_allowed, rendition_height) = match &admission {
            Decision::Admit(choice) => {
                self.telemetry.admission(AdmissionDecision::Admit);
                // Personal items asked for later (zoom, tap) are admitted when asked.
                (choice.personal && personal, choice.rendition.height)
            }
            Decision::Degrade { to, reason, .. } => {
                self.telemetry.admission(AdmissionDecision::Degrade);
                tracing::info!(session = request.session_id, %reason, "viewer admitted degraded");
                (to.personal, to.rendition.height)
            }
            Decision::Refuse { reason } => {
                self.telemetry.admission(AdmissionDecision::Refuse);
                return Err(Refusal::new(format!("over the frame budget: {reason}")));
            }
        };

        let viewer = Viewer {
            session_id: request.session_id,
            remote_ip: request.remote.ip().to_canonical(),
            zone: decision.zone_id.clone(),
            zone_source: decision.source,
            allowed_zones: claims.as_ref().map(|c| c.zones.clone()),
            name,
            personal_allowed,
            rendition_height,
            zoom: zoom.filter(|_| personal_allowed),
            follow_face,
            taps: Vec::new(),
            joined: Instant::now(),
        };
        tracing::info!(
            session = request.session_id,
            zone = %viewer.zone,
            zone_source = decision.source.as_str(),
            rendition = rendition_height,
            personal = personal_allowed && personal,
            decision = admission.label(),
            query = %request.loggable_query(),
            "viewer admitted"
        );
        self.directory.insert(viewer);
        if let Some(mec) = &self.mec {
            self.spawn_mec_lookup(mec.clone(), request.session_id);
        }
        Ok(LOBBY.to_string())
    }

    fn control(&self, session_id: u64, message: &[u8]) -> Result<(), String> {
        let message = viewer_control::parse(message)?;
        // A zoom or a tap makes the rendering personal: admitted like a new personal request.
        if matches!(
            message,
            ControlMessage::Zoom(_) | ControlMessage::Tap { .. }
        ) {
            self.admit_personal(session_id)?;
        }
        let mut refused = None;
        let known = self.directory.update(session_id, |viewer| match message {
            ControlMessage::Zoom(rect) if viewer.personal_allowed => viewer.zoom = Some(rect),
            ControlMessage::ZoomReset => viewer.zoom = None,
            ControlMessage::Tap { x, y } => viewer.taps.push((x, y)),
            ControlMessage::Zoom(_) => {
                refused =
                    Some("zoom refused: personal renderings were not admitted for this viewer");
            }
        });
        if !known {
            return Err("control message from an unknown session".into());
        }
        match refused {
            Some(reason) => Err(reason.into()),
            None => Ok(()),
        }
    }

    fn closed(&self, session_id: u64) {
        self.directory.remove(session_id);
    }
}

impl NodeRouter {
    /// Lets a viewer that joined without personal items have them, if the budget allows.
    fn admit_personal(&self, session_id: u64) -> Result<(), String> {
        let viewer = self
            .directory
            .get(session_id)
            .ok_or("control message from an unknown session")?;
        if viewer.personal_allowed {
            return Ok(());
        }
        let decision = self.admission.decide(
            &viewer.zone,
            Request {
                rendition: admission_rendition(viewer.rendition_height),
                personal: true,
            },
        );
        match decision.choice() {
            Some(choice)
                if choice.personal && choice.rendition.height == viewer.rendition_height =>
            {
                self.telemetry.admission(AdmissionDecision::Admit);
                self.directory
                    .update(session_id, |v| v.personal_allowed = true);
                Ok(())
            }
            _ => {
                self.telemetry.admission(AdmissionDecision::Refuse);
                Err(match decision {
                    Decision::Refuse { reason } | Decision::Degrade { reason, .. } => {
                        format!("zoom/tap refused, over the frame budget: {reason}")
                    }
                    Decision::Admit(_) => "zoom/tap refused: over the frame budget".into(),
                })
            }
        }
    }

    /// Asks the MEC platform where the viewer's UE is; moves the viewer when it says another
    /// zone. The viewer is already watching meanwhile: a slow platform delays nothing.
    fn spawn_mec_lookup(&self, mec: Arc<MecLookup>, session_id: u64) {
        let (directory, campaigns, telemetry) = (
            self.directory.clone(),
            self.campaigns.clone(),
            self.telemetry.clone(),
        );
        let Some(ip) = directory.get(session_id).map(|v| v.remote_ip) else {
            return;
        };
        mec.runtime.clone().spawn(async move {
            match mec.client.user_zone(ip).await {
                Ok(fix) => {
                    telemetry.mec_request(MecOutcome::Ok);
                    let fix = MecFix {
                        zone_id: Some(fix.zone_id),
                        cell_id: Some(fix.access_point_id),
                    };
                    apply_mec_fix(&directory, &campaigns.current(), session_id, &fix);
                }
                Err(e) => {
                    let outcome = match e {
                        LocationError::Timeout { .. } => MecOutcome::Timeout,
                        _ => MecOutcome::Error,
                    };
                    telemetry.mec_request(outcome);
                    telemetry.mec_request(MecOutcome::Fallback);
                    tracing::warn!(session = session_id, %ip, error = %e, kind = e.kind(), "MEC location lookup failed; keeping the zone from the URL or the default");
                }
            }
        });
    }
}

/// Moves a viewer to the zone a MEC fix maps to (when the token allows it). Returns the new
/// zone when it changed.
pub fn apply_mec_fix(
    directory: &ViewerDirectory,
    campaigns: &Campaigns,
    session_id: u64,
    fix: &MecFix,
) -> Option<String> {
    let zone = campaigns.zone_for_mec(fix.zone_id.as_deref(), fix.cell_id.as_deref())?;
    let zone_id = zone.id.clone();
    let mut changed = None;
    directory.update(session_id, |viewer| {
        let allowed = viewer
            .allowed_zones
            .as_ref()
            .is_none_or(|zones| zones.is_empty() || zones.iter().any(|z| z == &zone_id));
        if allowed && viewer.zone != zone_id {
            tracing::info!(session = session_id, from = %viewer.zone, to = %zone_id, "MEC location moves the viewer");
            viewer.zone = zone_id.clone();
            viewer.zone_source = ZoneSource::Mec;
            changed = Some(zone_id.clone());
        }
    });
    changed
}

fn lat_lon(request: &ViewerRequest) -> Result<Option<(f64, f64)>, String> {
    match (request.query_value("lat"), request.query_value("lon")) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => {
            let lat: f64 = lat
                .parse()
                .map_err(|_| format!("lat={lat:?} is not a number"))?;
            let lon: f64 = lon
                .parse()
                .map_err(|_| format!("lon={lon:?} is not a number"))?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(format!("lat/lon {lat},{lon} out of range"));
            }
            Ok(Some((lat, lon)))
        }
        _ => Err("lat and lon go together".into()),
    }
}

fn rendition(campaigns: &Campaigns, request: &ViewerRequest) -> Result<u32, String> {
    match request.query_value("rendition") {
        None => Ok(campaigns.settings.default_rendition.height),
        Some(name) => campaigns
            .allowed_rendition(&name)
            .map(|r| r.height)
            .ok_or_else(|| {
                let offered: Vec<&str> = campaigns
                    .settings
                    .renditions
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                format!(
                    "rendition {name:?} is not offered here (offered: {})",
                    offered.join(", ")
                )
            }),
    }
}

/// `x,y,w,h` in fractions of the frame.
pub fn parse_zoom(text: &str) -> Result<NormalizedRect, String> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("zoom={text:?}: expected x,y,w,h fractions like 0.25,0.25,0.5,0.5"))?;
    match parts[..] {
        [x, y, w, h] => NormalizedRect::new(x, y, w, h),
        _ => Err(format!("zoom={text:?}: expected four numbers x,y,w,h")),
    }
}

/// A display name as drawn: control characters removed, bounded length.
fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(clean_name(" 李雷\u{7}\n "), "李雷");
        assert_eq!(clean_name(&"x".repeat(100)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn zoom_queries_parse_or_say_why() {
        assert_eq!(
            parse_zoom("0.25,0.25,0.5,0.5").unwrap(),
            NormalizedRect::new(0.25, 0.25, 0.5, 0.5).unwrap()
        );
        assert!(parse_zoom("1,2").unwrap_err().contains("four numbers"));
        assert!(parse_zoom("a,b,c,d").unwrap_err().contains("fractions"));
        assert!(parse_zoom("0.9,0,0.5,0.5").unwrap_err().contains("inside"));
    }

    #[test]
    fn admission_off_admits_what_the_model_would_refuse() {
        let gate = |enforce: bool| {
            let model = Admission::new(
                std::time::Duration::from_millis(1),
                2,
                &[Rendition::new(1280, 720)],
                edge_core::admission::CostPriors::default(),
            )
            .unwrap();
            AdmissionGate::new(model).enforcing(enforce)
        };
        let request = Request {
            rendition: Rendition::new(1280, 720),
            personal: true,
        };
        assert!(matches!(
            gate(true).decide("default", request),
            Decision::Refuse { .. }
        ));
        match gate(false).decide("default", request) {
            Decision::Admit(choice) => {
                assert!(choice.personal && choice.rendition == request.rendition);
                assert!(choice.predicted_p99 > std::time::Duration::from_millis(1));
            }
            other => panic!("admission off must admit as asked, got {other:?}"),
        }
    }

    #[test]
    fn a_mec_fix_moves_a_viewer_into_the_mall() {
        let campaigns = Campaigns::embedded();
        let directory = ViewerDirectory::default();
        directory.insert(Viewer {
            session_id: 1,
            remote_ip: "10.0.0.7".parse().unwrap(),
            zone: "default".into(),
            zone_source: ZoneSource::Default,
            allowed_zones: None,
            name: None,
            personal_allowed: true,
            rendition_height: 720,
            zoom: None,
            follow_face: false,
            taps: Vec::new(),
            joined: Instant::now(),
        });
        let fix = MecFix {
            zone_id: Some("zone-yintai-mall".into()),
            cell_id: None,
        };
        assert_eq!(
            apply_mec_fix(&directory, &campaigns, 1, &fix).as_deref(),
            Some("yintai-mall")
        );
        assert_eq!(directory.get(1).unwrap().zone_source, ZoneSource::Mec);
        assert_eq!(
            apply_mec_fix(&directory, &campaigns, 1, &fix),
            None,
            "already there"
        );
    }

    #[test]
    fn a_node_measured_over_budget_starts_no_new_group() {
        let gate = AdmissionGate::new(
            Admission::new(
                std::time::Duration::from_millis(20),
                2,
                &[Rendition::new(1280, 720)],
                Default::default(),
            )
            .unwrap(),
        );
        let request = Request {
            rendition: Rendition::new(1280, 720),
            personal: false,
        };
        assert!(matches!(
            gate.decide("default", request),
            Decision::Admit(_)
        ));
        for _ in 0..100 {
            gate.record_node_latency(std::time::Duration::from_millis(12));
        }
        assert!(matches!(
            gate.decide("default", request),
            Decision::Admit(_)
        ));
        for _ in 0..10 {
            gate.record_node_latency(std::time::Duration::from_millis(31));
        }
        // No live group for this zone yet: admitting would start one.
        match gate.decide("default", request) {
            Decision::Refuse { reason } => assert!(reason.contains("measured"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
