//! The validated campaign model: what the node renders where, and when.
//!
//! Every value here has passed validation (see `validate.rs`): references resolve, rings are
//! closed, schedules are ordered. The file format itself is documented in
//! `default-campaigns.toml`.

use crate::geo::Geofence;
use crate::schedule::{countdown_text, Schedule};
use edge_core::placement::Anchor;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The picture height overlay artwork and placement margins are made for: an image overlay
/// is drawn at its PNG's size, and a margin as given, in a 720-line rendition, and both are
/// scaled with the rendition's height, so an overlay covers the same share of every rendition.
pub const REFERENCE_HEIGHT: u32 = 720;

/// Names of the overlay artwork shipped in the node binary (`image = "builtin:NAME"`).
/// The node's asset table has one PNG for each; a test there keeps the two in step.
pub const BUILTIN_IMAGES: &[&str] = &[
    "live-badge",
    "product-card",
    "yintai-mall-ad",
    "default-ad",
    "back-soon",
];

/// The one placeholder a coupon template may (and must) use.
pub const NAME_PLACEHOLDER: &str = "{name}";

/// Operator policy: how viewers may pick their zone and rendition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Whether `?zone=` hints from viewers are honoured (demo: yes; production: no).
    pub allow_zone_hints: bool,
    /// Where everyone goes whom MEC, geofences and hints do not place.
    pub default_zone: String,
    /// Renditions viewers may ask for, smallest first.
    pub renditions: Vec<Rendition>,
    pub default_rendition: Rendition,
    /// The largest ROI zoom factor a viewer may ask for.
    pub max_zoom: f32,
}

/// An output size by its height (`720p`); the width follows the source's aspect ratio.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Rendition {
    pub height: u32,
    pub name: String,
}

impl Rendition {
    /// Reads `720p`-style names: an even height from 144 to 4320 followed by `p`.
    pub fn parse(name: &str) -> Result<Rendition, String> {
        let height = name
            .strip_suffix('p')
            .and_then(|h| h.parse::<u32>().ok())
            .filter(|h| (144..=4320).contains(h) && h % 2 == 0);
        match height {
            Some(height) => Ok(Rendition {
                height,
                name: name.to_string(),
            }),
            None => Err(format!(
                "{name:?} is not a rendition like \"720p\" (an even height 144..=4320, then p)"
            )),
        }
    }
}

/// Where viewers are: a geofence and/or the ids the MEC Location API reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
    pub geofence: Option<Geofence>,
    /// ETSI MEC 013 `zoneId`s that map to this zone.
    pub mec_zone_ids: Vec<String>,
    /// Cell ids (MEC 013 `accessPointId`, or an ECGI/NRCGI cell id) that map to this zone.
    pub cell_ids: Vec<String>,
}

/// What an overlay draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OverlayContent {
    Image { image: ImageSource },
    Card(CardSpec),
    Coupon(CouponSpec),
}

/// A PNG: shipped in the binary, or a file (paths in a campaign file are relative to it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    Builtin(String),
    File {
        path: PathBuf,
        /// FNV-1a of the bytes read at load, so an edited PNG changes render keys.
        content_hash: u64,
    },
}

impl ImageSource {
    /// The `image = "..."` spelling, as the node's asset loader takes it.
    pub fn as_config_str(&self) -> String {
        match self {
            ImageSource::Builtin(name) => format!("builtin:{name}"),
            ImageSource::File { path, .. } => path.display().to_string(),
        }
    }
}

/// A product card drawn as text: a title, a price, and optionally a countdown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CardSpec {
    pub title: String,
    pub price: String,
    pub countdown_to_unix_secs: Option<i64>,
}

impl CardSpec {
    /// The countdown line at `now` (`HH:MM:SS`), if the card has one.
    pub fn countdown_text(&self, now_unix_secs: i64) -> Option<String> {
        self.countdown_to_unix_secs
            .map(|to| countdown_text(to, now_unix_secs))
    }
}

/// A personal overlay: text made for one viewer from a template with `{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CouponSpec {
    pub template: String,
}

impl CouponSpec {
    /// The coupon's text for a viewer (`"{name}, 20% off today"` → `"Li Lei, 20% off today"`).
    pub fn text_for(&self, viewer_name: &str) -> String {
        self.template.replace(NAME_PLACEHOLDER, viewer_name)
    }
}

/// Regions an overlay keeps clear of, from the understanding stage's detections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Avoid {
    Faces,
    Text,
    #[default]
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TapAction {
    /// A tap on the overlay shows its expanded form in the next frame.
    Expand,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub anchor: Anchor,
    /// Pixels from the anchored edges `[x, y]`.
    pub margin: [i32; 2],
    pub avoid: Avoid,
}

/// One overlay, ready to draw.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OverlaySpec {
    pub id: String,
    pub content: OverlayContent,
    pub placement: Placement,
    pub opacity: f32,
    pub tap: Option<TapAction>,
    /// What a screen reader says for it (cards default to their title and price).
    pub label: Option<String>,
    /// The product it sells, for the shop app a viewer's client hands a purchase to.
    pub product_id: Option<String>,
    /// Where a purchase or more detail is (an http(s) URL).
    pub link: Option<String>,
    /// Digest of everything above, so render keys change exactly when the rendering would.
    pub fingerprint: u64,
}

impl OverlaySpec {
    /// Personal overlays differ per viewer, so they never belong to a zone's shared rendering.
    pub fn is_personal(&self) -> bool {
        matches!(self.content, OverlayContent::Coupon(_))
    }
}

/// Which zones a campaign targets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    /// `zones = ["*"]`.
    All,
    Zones(Vec<String>),
}

impl Targets {
    pub fn includes(&self, zone_id: &str) -> bool {
        match self {
            Targets::All => true,
            Targets::Zones(ids) => ids.iter().any(|z| z == zone_id),
        }
    }
}

/// Shows these overlays to viewers in these zones, within the schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaign {
    pub id: String,
    pub targets: Targets,
    pub overlays: Vec<String>,
    pub schedule: Schedule,
}

/// FNV-1a, 64 bit: a digest that is the same in every process and release, unlike
/// `DefaultHasher`, so fingerprints can be logged and compared across nodes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renditions_by_height() {
        assert_eq!(Rendition::parse("720p").unwrap().height, 720);
        for bad in ["720", "721p", "100p", "8640p", "hd"] {
            assert!(Rendition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coupon_text_names_the_viewer() {
        let c = CouponSpec {
            template: "{name}，今日八折".into(),
        };
        assert_eq!(c.text_for("李雷"), "李雷，今日八折");
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
