//! What a rendering is, as plain values: the key that decides which viewers share one, how
//! shareable renderings are named, and what the picture must keep clear of. Shared by the
//! control plane (routing, admission) and the engine (render groups) so neither needs the
//! other to name a rendering.

use serde::Serialize;

use crate::geometry::Rect;
use crate::groups::GroupId;

/// Where shareable renderings are published: the only prefix the relay uplink forwards.
pub const SHARED_PREFIX: &str = "shared";

/// The campaign's part of a render-group key: which overlays a zone shows now, and a digest of
/// their content. Two zones showing the same overlays get equal parts (and can share a group);
/// a hot reload that changes an overlay's text, image or placement changes the digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RenderKeyPart {
    /// Active overlay ids, sorted.
    pub overlay_ids: Vec<String>,
    /// FNV-1a over the active overlays' fingerprints, in `overlay_ids` order.
    pub fingerprint: u64,
}

/// Everything that makes two viewers' frames differ. Equal keys, byte-identical frames.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenderKey {
    pub zone: String,
    /// The zone's active overlays now (changes on schedule and hot reload).
    pub campaign: RenderKeyPart,
    /// A personal coupon's text.
    pub coupon: Option<String>,
    /// The overlay a viewer tapped open.
    pub expanded: Option<String>,
    /// Whose zoom the picture follows: `None` = the whole picture.
    pub zoom_of: Option<u64>,
    /// The picture follows the host's face (`?zoom=follow-face`).
    pub follow_face: bool,
    pub height: u32,
}

impl RenderKey {
    /// Whether the rendering carries anything of one viewer's own.
    pub fn is_personal(&self) -> bool {
        self.coupon.is_some() || self.expanded.is_some() || self.zoom_of.is_some()
    }
}

/// A group's broadcast name on the origin: `shared/<zone>/g<N>` for renderings anyone in the
/// zone may see, `personal/g<N>` for those carrying one viewer's coupon, zoom or tapped card
/// (served to that viewer's own feed only, never published beyond the node).
pub fn group_name(id: GroupId, key: &RenderKey) -> String {
    if key.is_personal() {
        format!("personal/g{}", id.0)
    } else {
        format!("{SHARED_PREFIX}/{}/g{}", key.zone, id.0)
    }
}

/// What overlays keep clear of, in source pixels: the latest detections.
#[derive(Clone, Debug, Default)]
pub struct Obstacles {
    /// Bumped whenever the detections change, so placement only re-plans on news.
    pub version: u64,
    /// Faces and their confidence.
    pub faces: Vec<(Rect, f32)>,
    pub text: Vec<Rect>,
}
