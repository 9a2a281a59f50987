//! Who is watching, and what each viewer asked for: written by the session router (network
//! tasks), the control channel and the MEC listener; read by the engine once per frame.
//!
//! Only plain data lives here. The directory remembers which viewers changed (joined, left,
//! moved zone, zoomed, tapped) since the engine last asked; the engine takes just those and
//! turns them into render-group keys, so a change takes effect on the next frame and a frame
//! costs the changes, not the audience.

use crate::viewer_control::NormalizedRect;
use edge_campaign::{Campaigns, OverlayContent, ZoneSource};
use edge_core::rendering::RenderKey;
use std::collections::{HashMap, HashSet};
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
    /// The `?zone=` the viewer connected with: where it goes again when a new position places
    /// it in no geofence.
    pub zone_hint: Option<String>,
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

impl Viewer {
    /// A viewer placed in `zone` by default, with nothing personal asked for yet (no name, the
    /// whole picture, 720p), personal items allowed: the shape admission starts from.
    pub fn in_zone(session_id: u64, remote_ip: IpAddr, zone: &str) -> Self {
        Self {
            session_id,
            remote_ip,
            zone: zone.into(),
            zone_source: ZoneSource::Default,
            zone_hint: None,
            allowed_zones: None,
            name: None,
            personal_allowed: true,
            rendition_height: 720,
            zoom: None,
            follow_face: false,
            taps: Vec::new(),
            joined: Instant::now(),
        }
    }
}

/// All viewers, by session id.
#[derive(Default)]
pub struct ViewerDirectory {
    state: Mutex<DirectoryState>,
}

#[derive(Default)]
struct DirectoryState {
    viewers: HashMap<u64, Viewer>,
    /// Sessions inserted, updated or removed since the engine last took the changes.
    changed: HashSet<u64>,
}

/// What changed since the last [`ViewerDirectory::take_changes`].
#[derive(Debug, Default, PartialEq)]
pub struct ViewerChanges {
    /// Viewers that joined or changed, as they are now (with the taps they made since).
    pub updated: Vec<Viewer>,
    /// Sessions that left.
    pub removed: Vec<u64>,
}

impl ViewerChanges {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.removed.is_empty()
    }
}

impl ViewerDirectory {
    fn lock(&self) -> MutexGuard<'_, DirectoryState> {
        // Each critical section is one map update; a panic elsewhere leaves the map consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, viewer: Viewer) {
        let mut state = self.lock();
        state.changed.insert(viewer.session_id);
        state.viewers.insert(viewer.session_id, viewer);
    }

    pub fn remove(&self, session_id: u64) -> Option<Viewer> {
        let mut state = self.lock();
        let removed = state.viewers.remove(&session_id);
        if removed.is_some() {
            state.changed.insert(session_id);
        }
        removed
    }

    /// Applies `change` to one viewer; false for an unknown session.
    pub fn update(&self, session_id: u64, change: impl FnOnce(&mut Viewer)) -> bool {
        let mut state = self.lock();
        let Some(viewer) = state.viewers.get_mut(&session_id) else {
            return false;
        };
        change(viewer);
        state.changed.insert(session_id);
        true
    }

    pub fn get(&self, session_id: u64) -> Option<Viewer> {
        self.lock().viewers.get(&session_id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().viewers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The viewers that changed since the last call, with their pending taps handed over (and
    /// cleared here). One reader, the engine: a second would steal the first one's changes.
    pub fn take_changes(&self) -> ViewerChanges {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut changes = ViewerChanges::default();
        for session_id in state.changed.drain() {
            match state.viewers.get_mut(&session_id) {
                Some(viewer) => {
                    changes.updated.push(viewer.clone());
                    viewer.taps.clear();
                }
                None => changes.removed.push(session_id),
            }
        }
        changes
    }

    /// Viewers by remote address (a MEC notification names the UE's address).
    pub fn sessions_at(&self, ip: IpAddr) -> Vec<u64> {
        self.lock()
            .viewers
            .values()
            .filter(|v| v.remote_ip == ip)
            .map(|v| v.session_id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(session_id: u64) -> Viewer {
        Viewer::in_zone(session_id, IpAddr::from([127, 0, 0, 1]), "default")
    }

    fn sorted(mut changes: ViewerChanges) -> (Vec<u64>, Vec<u64>) {
        let mut updated: Vec<u64> = changes.updated.iter().map(|v| v.session_id).collect();
        updated.sort();
        changes.removed.sort();
        (updated, changes.removed)
    }

    #[test]
    fn only_what_changed_since_the_last_take_is_handed_over() {
        let directory = ViewerDirectory::default();
        for id in 1..=100 {
            directory.insert(viewer(id));
        }
        assert_eq!(directory.take_changes().updated.len(), 100);
        assert!(directory.take_changes().is_empty(), "nothing new");

        directory.update(7, |v| v.zone = "yintai-mall".into());
        directory.update(9, |v| v.taps.push((0.5, 0.5)));
        directory.remove(3);
        assert!(!directory.update(3, |v| v.zone = "gone".into()));
        assert_eq!(sorted(directory.take_changes()), (vec![7, 9], vec![3]));
        assert_eq!(directory.len(), 99);
    }

    #[test]
    fn taps_are_handed_over_once() {
        let directory = ViewerDirectory::default();
        directory.insert(viewer(1));
        directory.update(1, |v| v.taps.push((0.25, 0.75)));
        let changes = directory.take_changes();
        assert_eq!(changes.updated[0].taps, vec![(0.25, 0.75)]);
        assert!(directory.get(1).unwrap().taps.is_empty());
        directory.update(1, |v| v.follow_face = true);
        assert!(directory.take_changes().updated[0].taps.is_empty());
    }

    #[test]
    fn a_viewer_who_joins_and_leaves_between_takes_is_reported_as_gone() {
        let directory = ViewerDirectory::default();
        directory.insert(viewer(5));
        directory.remove(5);
        assert_eq!(sorted(directory.take_changes()), (vec![], vec![5]));
    }
}
