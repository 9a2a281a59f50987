//! Overlays on the GPU, made on demand from campaign specs and kept while they are drawn.
//!
//! An image overlay is uploaded once; a product card is rasterised (CPU, cosmic-text) per
//! size, expansion and countdown text; a coupon per viewer text. Anything not drawn for
//! [`EVICT_AFTER_FRAMES`] frames is removed from the GPU, so countdowns ticking every second
//! and coupons of viewers who left never accumulate.

use anyhow::{Context, Result};
use edge_campaign::{OverlayContent, OverlaySpec, REFERENCE_HEIGHT};
use edge_cards::{CardFonts, CardLabels, CardRenderer, Coupon, ProductCard};
use edge_compose::{Compositor, OverlayId};
use std::collections::HashMap;
use std::time::Duration;

/// A cached overlay unused this many frames is freed (about two seconds at 30 fps).
const EVICT_AFTER_FRAMES: u64 = 60;

/// How one overlay spec is drawn for one rendering.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OverlayVariant {
    /// The rendition's lines: its short side (the height of a landscape picture, the width of
    /// a portrait one). Cards are laid out for it and artwork is scaled to it.
    pub lines: u32,
    /// The card was tapped: its expanded form.
    pub expanded: bool,
    /// A coupon's personalised text.
    pub coupon_text: Option<String>,
    /// A card's countdown, whole seconds left.
    pub countdown_secs: Option<u64>,
}

/// An overlay on the GPU, ready to place.
#[derive(Clone, Copy, Debug)]
pub struct CachedOverlay {
    pub id: OverlayId,
    pub size: (u32, u32),
    /// An expanded card's call-to-action button, in the overlay's pixels `[x, y, w, h]`.
    pub button: Option<[u32; 4]>,
}

struct Cached {
    overlay: CachedOverlay,
    last_used: u64,
}

pub struct OverlayCache {
    entries: HashMap<(String, u64, OverlayVariant), Cached>,
    cards: Option<CardRenderer>,
    cards_error: Option<String>,
    /// The words on an expanded card's button, as drawn.
    call_to_action: String,
    frame: u64,
}

impl OverlayCache {
    pub fn new() -> Self {
        // Cards need a CJK font; without one the node still serves images and says why once.
        let (cards, cards_error) = match CardFonts::noto_cjk_system().and_then(CardRenderer::new) {
            Ok(renderer) => (Some(renderer), None),
            Err(e) => {
                tracing::warn!(error = %e, "text cards disabled: no usable font");
                (None, Some(e.to_string()))
            }
        };
        Self {
            entries: HashMap::new(),
            cards,
            cards_error,
            call_to_action: CardLabels::default().call_to_action,
            frame: 0,
        }
    }

    /// The words on an expanded card's button.
    pub fn call_to_action(&self) -> &str {
        &self.call_to_action
    }

    /// Call once per rendered frame, before [`OverlayCache::get`]s: frees what went unused.
    pub fn next_frame(&mut self, compositor: &mut Compositor) {
        self.frame += 1;
        let frame = self.frame;
        let mut stale = Vec::new();
        self.entries.retain(|_, c| {
            let keep = frame - c.last_used <= EVICT_AFTER_FRAMES;
            if !keep {
                stale.push(c.overlay.id);
            }
            keep
        });
        for id in stale {
            if let Err(e) = compositor.remove_overlay(id) {
                tracing::debug!(error = %e, "overlay already gone");
            }
        }
    }

    /// The GPU overlay for `spec` drawn as `variant`, its size and its button.
    pub fn get(
        &mut self,
        compositor: &mut Compositor,
        spec: &OverlaySpec,
        variant: &OverlayVariant,
    ) -> Result<CachedOverlay> {
        let key = (spec.id.clone(), spec.fingerprint, variant.clone());
        if let Some(cached) = self.entries.get_mut(&key) {
            cached.last_used = self.frame;
            return Ok(cached.overlay);
        }
        let mut button = None;
        let id = match &spec.content {
            OverlayContent::Image { image } => {
                let png = crate::assets::overlay_png(&image.as_config_str())?;
                let (width, height, rgba) = edge_compose::decode_png_rgba(&png)
                    .with_context(|| format!("overlay {:?}", spec.id))?;
                // Artwork is made for a 720-line picture: scaled with the rendition, it covers
                // the same share of every rendition.
                let (scaled_width, scaled_height) =
                    (scaled(width, variant.lines), scaled(height, variant.lines));
                let rgba = edge_core::resample::rgba_resized(
                    width,
                    height,
                    &rgba,
                    scaled_width,
                    scaled_height,
                );
                compositor
                    .load_overlay_rgba(scaled_width, scaled_height, &rgba)
                    .with_context(|| format!("overlay {:?}", spec.id))?
            }
            OverlayContent::Card(card) => {
                let renderer = self.card_renderer()?;
                let picture = renderer
                    .product_card_picture(
                        &ProductCard {
                            title: card.title.clone(),
                            price: card.price.clone(),
                            countdown: variant.countdown_secs.map(Duration::from_secs),
                            expanded: variant.expanded,
                            detail: None,
                        },
                        variant.lines,
                    )
                    .with_context(|| format!("card {:?}", spec.id))?;
                button = picture.button;
                let image = picture.image;
                compositor.load_overlay_rgba(image.width, image.height, &image.pixels)?
            }
            OverlayContent::Coupon(_) => {
                let text = variant
                    .coupon_text
                    .clone()
                    .context("a coupon needs the viewer's text")?;
                let renderer = self.card_renderer()?;
                let image = renderer
                    .coupon(&Coupon { text }, variant.lines)
                    .with_context(|| format!("coupon {:?}", spec.id))?;
                compositor.load_overlay_rgba(image.width, image.height, &image.pixels)?
            }
        };
        let image = compositor
            .overlay_image(id)
            .context("overlay just loaded")?;
        let overlay = CachedOverlay {
            id,
            size: (image.width(), image.height()),
            button,
        };
        self.entries.insert(
            key,
            Cached {
                overlay,
                last_used: self.frame,
            },
        );
        Ok(overlay)
    }

    fn card_renderer(&mut self) -> Result<&mut CardRenderer> {
        match self.cards.as_mut() {
            Some(renderer) => Ok(renderer),
            None => anyhow::bail!(
                "text cards are disabled: {}",
                self.cards_error.as_deref().unwrap_or("no font")
            ),
        }
    }
}

/// `length` (pixels at the reference height) in a rendition of `lines` lines.
pub fn scaled(length: u32, lines: u32) -> u32 {
    let factor = f64::from(lines) / f64::from(REFERENCE_HEIGHT);
    ((f64::from(length) * factor).round() as u32).max(1)
}

/// A placement margin (pixels at the reference height) at a rendition.
pub fn scaled_margin(margin: i32, lines: u32) -> i32 {
    let factor = f64::from(lines) / f64::from(REFERENCE_HEIGHT);
    (f64::from(margin) * factor).round() as i32
}
