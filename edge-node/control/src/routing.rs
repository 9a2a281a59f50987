//! Where each viewer goes: auth, zone (MEC → lat/lon → hint → default), rendition, personal
//! items and admission against the frame budget, decided on the network task before the
//! session is accepted. The viewer then waits in the lobby (a rendering that is never
//! published) until the frame path seats it in its render group, one frame later.

use crate::admission_gate::{admission_rendition, AdmissionGate};
use crate::auth::{zone_allowed, ViewerAuth};
use crate::viewer_control::{self, ControlMessage, NormalizedRect};
use crate::viewers::render_key;
use crate::viewers::{Viewer, ViewerDirectory};
use edge_campaign::{CampaignStore, Campaigns, MecFix, ZoneInputs, ZoneSource};
use edge_core::admission::{Decision, Request};
use edge_deliver::{Refusal, SessionRouter, ViewerRequest};
use edge_location::{LocationClient, LocationError};
use edge_telemetry::peer_input::allow_unattributed;
use edge_telemetry::{AdmissionDecision, MecOutcome, Telemetry};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The rendering every viewer is routed to first; never published.
pub const LOBBY: &str = "lobby";

/// Longest display name taken for a coupon.
const MAX_NAME_CHARS: usize = 32;

/// Looks viewers up in the MEC platform's Location API, off the frame path.
pub struct MecLookup {
    pub client: Arc<LocationClient>,
    pub runtime: tokio::runtime::Handle,
}

/// Taps a viewer may have waiting for the engine (it takes them every frame).
const MAX_PENDING_TAPS: usize = 8;

pub struct NodeRouter {
    pub telemetry: Arc<Telemetry>,
    pub auth: Option<ViewerAuth>,
    pub campaigns: Arc<CampaignStore>,
    pub directory: Arc<ViewerDirectory>,
    pub admission: Arc<AdmissionGate>,
    pub mec: Option<Arc<MecLookup>>,
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
                    "auth: token does not allow zone {}",
                    shown(zone)
                )));
            }
        }
        let decision = campaigns.resolve_zone(&ZoneInputs {
            mec: None,
            lat_lon,
            hint: hint.clone(),
        });
        if let Some(note) = decision.note.as_ref().filter(|_| allow_unattributed()) {
            tracing::info!(session = request.session_id, %note, "zone hint not used");
        }
        if let Some(claims) = &claims {
            if !zone_allowed(claims, &decision.zone_id) {
                return Err(Refusal::new(format!(
                    "auth: token does not allow zone {}",
                    shown(&decision.zone_id)
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
        let mut viewer = Viewer {
            session_id: request.session_id,
            remote_ip: request.remote.ip().to_canonical(),
            zone: decision.zone_id.clone(),
            zone_source: decision.source,
            zone_hint: hint.clone(),
            allowed_zones: claims.as_ref().map(|c| c.zones.clone()),
            name,
            personal_allowed: personal,
            rendition_height,
            zoom,
            follow_face,
            taps: Vec::new(),
            joined: Instant::now(),
        };
        let admission = self.admission.decide(
            Request {
                rendition: admission_rendition(rendition_height),
                personal,
            },
            key_for(&viewer, &campaigns),
        );
        match &admission {
            Decision::Admit(choice) => {
                self.telemetry.admission(AdmissionDecision::Admit);
                // Personal items asked for later (zoom, tap) are admitted when asked.
                viewer.personal_allowed = choice.personal && personal;
            }
            Decision::Degrade { to, reason, .. } => {
                self.telemetry.admission(AdmissionDecision::Degrade);
                if allow_unattributed() {
                    tracing::info!(session = request.session_id, %reason, "viewer admitted degraded");
                }
                viewer.personal_allowed = to.personal;
                viewer.rendition_height = to.rendition.height;
            }
            Decision::Refuse { reason, detail } => {
                self.telemetry.admission(AdmissionDecision::Refuse);
                if allow_unattributed() {
                    tracing::info!(session = request.session_id, %detail, "admission refused a viewer");
                }
                return Err(Refusal::new(format!("over the frame budget, {reason}")));
            }
        }
        if !viewer.personal_allowed {
            viewer.zoom = None;
        }
        // Connections are the peers' to make: a flood of them costs the node's log budget only.
        if allow_unattributed() {
            tracing::info!(
                session = request.session_id,
                zone = %viewer.zone,
                zone_source = decision.source.as_str(),
                rendition = viewer.rendition_height,
                personal = viewer.personal_allowed && personal,
                decision = admission.label(),
                query = %request.loggable_query(),
                "viewer admitted"
            );
        }
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
        if let ControlMessage::Position { lat, lon } = message {
            let campaigns = self.campaigns.current();
            return apply_position(&self.directory, &campaigns, session_id, (lat, lon)).map(|_| ());
        }
        let mut refused = None;
        let known = self.directory.update(session_id, |viewer| match message {
            ControlMessage::Zoom(rect) if viewer.personal_allowed => viewer.zoom = Some(rect),
            ControlMessage::ZoomReset => viewer.zoom = None,
            ControlMessage::Tap { x, y } => {
                // Handed to the engine every frame; if frames stall, only the newest wait.
                if viewer.taps.len() >= MAX_PENDING_TAPS {
                    viewer.taps.remove(0);
                }
                viewer.taps.push((x, y));
            }
            ControlMessage::Zoom(_) => {
                refused =
                    Some("zoom refused: personal renderings were not admitted for this viewer");
            }
            ControlMessage::Position { .. } => {}
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
        // Zoom and taps make a rendering of the viewer's own: never an existing group.
        let mut personal = viewer.clone();
        personal.zoom = Some(NormalizedRect {
            x: 0.0,
            y: 0.0,
            w: 1.0,
            h: 1.0,
        });
        let decision = self.admission.decide(
            Request {
                rendition: admission_rendition(viewer.rendition_height),
                personal: true,
            },
            key_for(&personal, &self.campaigns.current()),
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
                    Decision::Refuse { reason, .. } | Decision::Degrade { reason, .. } => {
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

/// The render key `viewer` would have with each admission option (rendition, personal items
/// kept or not), for finding the group it would join.
fn key_for<'a>(
    viewer: &'a Viewer,
    campaigns: &'a Campaigns,
) -> impl Fn(edge_core::admission::Rendition, bool) -> edge_core::rendering::RenderKey + 'a {
    let now_unix = (edge_core::sei::unix_now_us() / 1_000_000) as i64;
    move |rendition, personal| {
        let mut option = viewer.clone();
        option.personal_allowed = personal;
        option.rendition_height = rendition.height;
        render_key(&option, campaigns, None, now_unix)
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

/// Places a viewer by a position it sent while watching, as its URL's `lat`/`lon` would have
/// at connect: the zone whose geofence holds it, else its `?zone=` hint, else the default. A
/// viewer the MEC platform placed stays where the network says. Returns the zone it moved to.
pub fn apply_position(
    directory: &ViewerDirectory,
    campaigns: &Campaigns,
    session_id: u64,
    lat_lon: (f64, f64),
) -> Result<Option<String>, String> {
    let viewer = directory
        .get(session_id)
        .ok_or("control message from an unknown session")?;
    if viewer.zone_source == ZoneSource::Mec {
        return Ok(None);
    }
    let decision = campaigns.resolve_zone(&ZoneInputs {
        mec: None,
        lat_lon: Some(lat_lon),
        hint: viewer.zone_hint.clone(),
    });
    let allowed = viewer
        .allowed_zones
        .as_ref()
        .is_none_or(|zones| zones.is_empty() || zones.iter().any(|z| z == &decision.zone_id));
    if !allowed {
        return Err(format!(
            "position: the viewer's token does not allow zone {}",
            shown(&decision.zone_id)
        ));
    }
    if decision.zone_id == viewer.zone && decision.source == viewer.zone_source {
        return Ok(None);
    }
    let mut moved = None;
    directory.update(session_id, |viewer| {
        // Not logged: the viewer decides how often it moves; the sessions API shows the zone.
        if viewer.zone != decision.zone_id {
            moved = Some(decision.zone_id.clone());
        }
        viewer.zone = decision.zone_id.clone();
        viewer.zone_source = decision.source;
    });
    Ok(moved)
}

fn lat_lon(request: &ViewerRequest) -> Result<Option<(f64, f64)>, String> {
    match (request.query_value("lat"), request.query_value("lon")) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => {
            let lat: f64 = lat
                .parse()
                .map_err(|_| format!("lat={} is not a number", shown(&lat)))?;
            let lon: f64 = lon
                .parse()
                .map_err(|_| format!("lon={} is not a number", shown(&lon)))?;
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
                    "rendition {} is not offered here (offered: {})",
                    shown(&name),
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
        .map_err(|_| {
            format!(
                "zoom={}: expected x,y,w,h fractions like 0.25,0.25,0.5,0.5",
                shown(text)
            )
        })?;
    match parts[..] {
        [x, y, w, h] => NormalizedRect::new(x, y, w, h),
        _ => Err(format!(
            "zoom={}: expected four numbers x,y,w,h",
            shown(text)
        )),
    }
}

/// Longest piece of a viewer's own input quoted back in a refusal.
const MAX_SHOWN_CHARS: usize = 24;

/// A viewer's input as quoted back to it: debug-quoted (control characters escaped), at most
/// [`MAX_SHOWN_CHARS`] of it.
fn shown(text: &str) -> String {
    let mut head: String = text.chars().take(MAX_SHOWN_CHARS).collect();
    if head.len() < text.len() {
        head.push('…');
    }
    format!("{head:?}")
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
    fn refusals_quote_a_bounded_piece_of_the_input() {
        assert_eq!(shown("yintai-mall"), "\"yintai-mall\"");
        let long = shown(&"z".repeat(10_000));
        assert!(long.len() < 40 && long.ends_with("…\""), "{long}");
        assert!(parse_zoom(&"9,".repeat(5_000)).unwrap_err().len() < 120);
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
    fn a_position_moves_a_viewer_in_and_out_of_the_mall() {
        let campaigns = Campaigns::embedded();
        let directory = ViewerDirectory::default();
        directory.insert(Viewer::in_zone(1, "10.0.0.7".parse().unwrap(), "default"));
        let mall = (30.2745, 120.1633);
        let lake = (30.2590, 120.1480);
        assert_eq!(
            apply_position(&directory, &campaigns, 1, mall),
            Ok(Some("yintai-mall".into()))
        );
        assert_eq!(directory.get(1).unwrap().zone_source, ZoneSource::Geofence);
        assert_eq!(apply_position(&directory, &campaigns, 1, mall), Ok(None));
        assert_eq!(
            apply_position(&directory, &campaigns, 1, lake),
            Ok(Some("default".into()))
        );
        directory.update(1, |v| v.zone_source = ZoneSource::Mec);
        assert_eq!(
            apply_position(&directory, &campaigns, 1, mall),
            Ok(None),
            "the network's fix outranks the device's position"
        );
        assert!(apply_position(&directory, &campaigns, 9, mall).is_err());
    }

    #[test]
    fn a_mec_fix_moves_a_viewer_into_the_mall() {
        let campaigns = Campaigns::embedded();
        let directory = ViewerDirectory::default();
        directory.insert(Viewer::in_zone(1, "10.0.0.7".parse().unwrap(), "default"));
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
}
