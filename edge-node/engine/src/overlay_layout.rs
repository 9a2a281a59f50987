//! What a render group drew where, for the viewers' clients: the message of the overlays track
//! (`edge_deliver::OVERLAYS_TRACK_NAME`; README, "Overlays track").
//!
//! Each frame a group's overlays are placed anew (some glide out of a face's way), but most
//! frames look like the last. A digest of what was drawn (overlay, rectangle, expansion) is
//! compared per frame, O(overlays) and without allocating; the JSON is built and handed to the
//! group's publisher only when it differs, and the publisher repeats it at every keyframe.

use std::hash::{DefaultHasher, Hash, Hasher};

use edge_campaign::{OverlayContent, OverlaySpec, TapAction};
use edge_core::geometry::Rect;
use serde::Serialize;

/// One overlay as drawn in a group's frame, in the rendering's pixels.
pub struct PlacedOverlay<'a> {
    pub spec: &'a OverlaySpec,
    pub rect: Rect,
    pub expanded: bool,
    /// An expanded card's call-to-action button, in the overlay picture's pixels.
    pub button: Option<[u32; 4]>,
    /// A coupon's text for this group's viewer.
    pub coupon_text: Option<&'a str>,
}

/// A group's last published layout.
#[derive(Debug, Default)]
pub struct LayoutState {
    published: Option<u64>,
}

impl LayoutState {
    /// The message to publish for this frame, when what was drawn differs from the last one
    /// published.
    pub fn changed(
        &mut self,
        width: u32,
        height: u32,
        placed: &[PlacedOverlay<'_>],
        call_to_action: &str,
    ) -> Option<Vec<u8>> {
        let digest = digest(width, height, placed);
        if self.published == Some(digest) {
            return None;
        }
        match layout_json(width, height, placed, call_to_action) {
            Ok(json) => {
                self.published = Some(digest);
                Some(json)
            }
            Err(e) => {
                tracing::warn!(error = %e, "overlay layout not serialisable");
                None
            }
        }
    }
}

fn digest(width: u32, height: u32, placed: &[PlacedOverlay<'_>]) -> u64 {
    let mut hasher = DefaultHasher::new();
    (width, height, placed.len()).hash(&mut hasher);
    for p in placed {
        (
            &p.spec.id,
            p.spec.fingerprint,
            (p.rect.x, p.rect.y, p.rect.w, p.rect.h),
            p.expanded,
            p.button,
            p.coupon_text,
        )
            .hash(&mut hasher);
    }
    hasher.finish()
}

/// The overlays track's message (schema in README, "Overlays track").
#[derive(Serialize)]
struct Layout<'a> {
    width: u32,
    height: u32,
    overlays: Vec<OverlayEntry<'a>>,
}

#[derive(Serialize)]
struct OverlayEntry<'a> {
    id: &'a str,
    kind: &'static str,
    x: i32,
    y: i32,
    w: u32,
    h: u32,
    /// What a screen reader says for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tap: Option<TapAction>,
    expanded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    button: Option<Button<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<Product<'a>>,
}

#[derive(Serialize)]
struct Button<'a> {
    x: i32,
    y: i32,
    w: u32,
    h: u32,
    label: &'a str,
}

#[derive(Serialize)]
struct Product<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
}

fn layout_json(
    width: u32,
    height: u32,
    placed: &[PlacedOverlay<'_>],
    call_to_action: &str,
) -> serde_json::Result<Vec<u8>> {
    let overlays = placed
        .iter()
        .map(|p| {
            let spec = p.spec;
            let (kind, label) = match &spec.content {
                OverlayContent::Image { .. } => ("image", spec.label.clone()),
                OverlayContent::Card(card) => (
                    "card",
                    Some(
                        spec.label
                            .clone()
                            .unwrap_or_else(|| format!("{}, {}", card.title, card.price)),
                    ),
                ),
                OverlayContent::Coupon(_) => (
                    "coupon",
                    spec.label.clone().or(p.coupon_text.map(str::to_string)),
                ),
            };
            let product = (spec.product_id.is_some() || spec.link.is_some()).then_some(Product {
                id: spec.product_id.as_deref(),
                link: spec.link.as_deref(),
            });
            OverlayEntry {
                id: &spec.id,
                kind,
                x: p.rect.x,
                y: p.rect.y,
                w: p.rect.w,
                h: p.rect.h,
                label,
                tap: spec.tap,
                expanded: p.expanded,
                button: p.button.map(|[x, y, w, h]| Button {
                    x: p.rect.x + x as i32,
                    y: p.rect.y + y as i32,
                    w,
                    h,
                    label: call_to_action,
                }),
                product,
            }
        })
        .collect();
    serde_json::to_vec(&Layout {
        width,
        height,
        overlays,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_campaign::Campaigns;

    #[test]
    fn a_layout_is_published_once_until_something_drawn_changes() {
        let campaigns = Campaigns::embedded();
        let card = campaigns.overlay("yintai-product-card").unwrap();
        let badge = campaigns.overlay("live-badge").unwrap();
        let placed = |x: i32, expanded: bool| {
            vec![
                PlacedOverlay {
                    spec: badge,
                    rect: Rect::new(24, 24, 100, 40),
                    expanded: false,
                    button: None,
                    coupon_text: None,
                },
                PlacedOverlay {
                    spec: card,
                    rect: Rect::new(x, 24, 300, 200),
                    expanded,
                    button: expanded.then_some([20, 150, 260, 40]),
                    coupon_text: None,
                },
            ]
        };
        let mut state = LayoutState::default();
        let first = state
            .changed(1280, 720, &placed(900, false), "Buy")
            .unwrap();
        assert!(state
            .changed(1280, 720, &placed(900, false), "Buy")
            .is_none());
        assert!(
            state
                .changed(1280, 720, &placed(898, false), "Buy")
                .is_some(),
            "moved"
        );
        let expanded = state.changed(1280, 720, &placed(898, true), "Buy").unwrap();

        let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["width"], 1280);
        let entry = &first["overlays"][1];
        assert_eq!(entry["id"], "yintai-product-card");
        assert_eq!(entry["kind"], "card");
        assert_eq!(
            (entry["x"].as_i64(), entry["w"].as_u64()),
            (Some(900), Some(300))
        );
        assert_eq!(entry["tap"], "expand");
        assert_eq!(entry["expanded"], false);
        assert!(entry.get("button").is_none());
        assert!(entry["label"].as_str().unwrap().contains("¥168"));
        assert_eq!(entry["product"]["id"], "longjing-mingqian-250g");
        assert!(entry["product"]["link"]
            .as_str()
            .unwrap()
            .starts_with("https://"));
        assert_eq!(first["overlays"][0]["kind"], "image");
        assert!(first["overlays"][0].get("tap").is_none());

        // What the frame path pays per group and frame: the check of an unchanged layout, and
        // the build of a changed one (printed, not asserted: timings belong to no unit test).
        let steady = placed(898, true);
        let runs = 100_000;
        let started = std::time::Instant::now();
        for _ in 0..runs {
            assert!(state
                .changed(1280, 720, std::hint::black_box(&steady), "Buy")
                .is_none());
        }
        let check_ns = started.elapsed().as_nanos() / runs;
        let started = std::time::Instant::now();
        for _ in 0..1_000 {
            std::hint::black_box(layout_json(1280, 720, &steady, "Buy").unwrap());
        }
        let build_ns = started.elapsed().as_nanos() / 1_000;
        eprintln!("overlay layout, 2 overlays: unchanged check {check_ns} ns, message built {build_ns} ns");

        let expanded: serde_json::Value = serde_json::from_slice(&expanded).unwrap();
        let button = &expanded["overlays"][1]["button"];
        assert_eq!(
            (
                button["x"].as_i64(),
                button["y"].as_i64(),
                button["label"].as_str()
            ),
            (Some(918), Some(174), Some("Buy")),
            "in the picture's pixels"
        );
    }
}
