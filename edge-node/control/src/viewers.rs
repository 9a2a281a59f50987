//! Who is watching, and what each viewer asked for: written by the session router (network
//! tasks), the control channel and the MEC listener; read by the frame path once per frame.
//!
//! Only plain data lives here. The frame path takes a snapshot and turns it into render-group
//! keys, so a viewer's change (a new zone, a zoom, a tap) takes effect on the next frame.

use crate::viewer_control::NormalizedRect;
use edge_campaign::{Campaigns, OverlayContent, ZoneSource};
use edge_core::rendering::RenderKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// One viewer's wishes, as admitted.
#[derive(Clone, Debug, PartialEq)]
pub struct Viewer {
    pub session_id: u64,
    pub remote_ip: IpAddr,
    pub zone: String,
    pub zone_source: ZoneSource,
    /// Zones the viewer's token allows (`None`: any).
    pub allowed_zones: Option<Vec<String>>,
    /// The name on the viewer's personal coupon; `None` when it has none (or admission
    /// dropped personal items).
    pub name: Option<String>,
    /// Whether admission lets this viewer have personal items (coupon, zoom, expanded card).
    pub personal_allowed: bool,
    /// Output height the viewer receives.
    pub rendition_height: u32,
    /// The part of the source the viewer zoomed into; `None` = the whole picture.
    pub zoom: Option<NormalizedRect>,
    /// `?zoom=follow-face`: keep the host's face framed (shared by everyone in the zone who
    /// asks, so not a personal item).
    pub follow_face: bool,
    /// Taps not yet handled by the frame path, in fractions of the viewer's frame.
    pub taps: Vec<(f64, f64)>,
    pub joined: Instant,
}

/// All viewers, by session id.
#[derive(Default)]
pub struct ViewerDirectory {
    viewers: Mutex<HashMap<u64, Viewer>>,
}

impl ViewerDirectory {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Viewer>> {
        // Each critical section is one map update; a panic elsewhere leaves the map consistent.
        self.viewers.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, viewer: Viewer) {
        self.lock().insert(viewer.session_id, viewer);
    }

    pub fn remove(&self, session_id: u64) -> Option<Viewer> {
        let removed = self.lock().remove(&session_id);
        removed
    }

    /// Applies `change` to one viewer; false for an unknown session.
    pub fn update(&self, session_id: u64, change: impl FnOnce(&mut Viewer)) -> bool {
        self.lock().get_mut(&session_id).map(change).is_some()
    }

    pub fn get(&self, session_id: u64) -> Option<Viewer> {
        self.lock().get(&session_id).cloned()
    }

    /// Viewers by remote address (a MEC notification names the UE's address).
    pub fn sessions_at(&self, ip: IpAddr) -> Vec<u64> {
        self.lock()
            .values()
            .filter(|v| v.remote_ip == ip)
            .map(|v| v.session_id)
            .collect()
    }

    /// A copy of every viewer, with each viewer's pending taps handed over (and cleared).
    pub fn take_snapshot(&self) -> Vec<Viewer> {
        let mut map = self.lock();
        map.values_mut()
            .map(|v| {
                let snapshot = v.clone();
                v.taps.clear();
                snapshot
            })
            .collect()
    }
}

/// The key of what `viewer` should see now.
pub fn render_key(
    viewer: &Viewer,
    campaigns: &Campaigns,
    expanded: Option<String>,
    now_unix: i64,
) -> RenderKey {
    let personal = viewer.personal_allowed;
    let has_coupon = campaigns
        .active_overlays(&viewer.zone, now_unix)
        .iter()
        .find_map(|o| match &o.content {
            OverlayContent::Coupon(c) => Some(c),
            _ => None,
        });
    RenderKey {
        zone: viewer.zone.clone(),
        campaign: campaigns.render_key_part(&viewer.zone, now_unix),
        coupon: match (personal, has_coupon, &viewer.name) {
            (true, Some(coupon), Some(name)) => Some(coupon.text_for(name)),
            _ => None,
        },
        expanded: expanded.filter(|_| personal),
        zoom_of: (personal && viewer.zoom.is_some()).then_some(viewer.session_id),
        follow_face: viewer.follow_face && !(personal && viewer.zoom.is_some()),
        height: viewer.rendition_height,
    }
}
