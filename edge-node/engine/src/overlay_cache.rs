//! Overlays on the GPU, made on demand from campaign specs and kept while they are drawn.
//!
//! An image overlay is uploaded once; a product card is rasterised (CPU, cosmic-text) per
//! size, expansion and countdown text; a coupon per viewer text. Anything not drawn for
//! [`EVICT_AFTER_FRAMES`] frames is removed from the GPU, so countdowns ticking every second
//! and coupons of viewers who left never accumulate.
//!
//! Text is laid out and rasterised on a painter thread of its own, never on the frame path
//! (a card takes milliseconds, tens of them in a debug build). What a viewer is about to need
//! is painted ahead: a tappable card's expanded form and every card's next countdown second,
//! so a tap is answered and a second ticks in the very next frame. Until a picture is painted
//! the overlay's nearest form on the GPU stands in for it (the collapsed card, the previous
//! second), or, for one never drawn yet, nothing.

use anyhow::{Context, Result};
use edge_campaign::{OverlayContent, OverlaySpec, TapAction, REFERENCE_HEIGHT};
use edge_cards::{CardFonts, CardLabels, CardRenderer, Coupon, ProductCard, RgbaImage};
use edge_compose::{Compositor, OverlayId};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// A cached overlay unused this many frames is freed (about two seconds at 30 fps).
const EVICT_AFTER_FRAMES: u64 = 60;

/// Paint jobs waiting for the painter; more wait for a later frame.
const PAINT_QUEUE: usize = 32;

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
    /// Whether the picture is a card's expanded form (it may stand in for the other form
    /// while that one is being painted).
    pub expanded: bool,
}

/// One picture of one spec: (overlay id, spec fingerprint, variant).
type Key = (String, u64, OverlayVariant);

struct Cached {
    overlay: CachedOverlay,
    last_used: u64,
}

/// A painted picture not on the GPU yet.
struct Painted {
    image: RgbaImage,
    button: Option<[u32; 4]>,
    /// The frame that last wanted it: pictures painted ahead and never used are dropped.
    wanted: u64,
}

/// What the painter draws.
enum Paint {
    Card(ProductCard),
    Coupon(Coupon),
}

struct PaintJob {
    key: Key,
    paint: Paint,
}

type PaintResult = (Key, Result<(RgbaImage, Option<[u32; 4]>), String>);

/// The thread that lays out and rasterises text pictures.
struct Painter {
    jobs: SyncSender<PaintJob>,
    done: Receiver<PaintResult>,
}

impl Painter {
    fn start(mut renderer: CardRenderer) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::sync_channel::<PaintJob>(PAINT_QUEUE);
        let (outbox, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("card-painter".into())
            .spawn(move || {
                for job in inbox {
                    let lines = job.key.2.lines;
                    let painted = match &job.paint {
                        Paint::Card(card) => renderer
                            .product_card_picture(card, lines)
                            .map(|p| (p.image, p.button)),
                        Paint::Coupon(coupon) => renderer.coupon(coupon, lines).map(|i| (i, None)),
                    };
                    if outbox
                        .send((job.key, painted.map_err(|e| e.to_string())))
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(Self { jobs, done })
    }
}

pub struct OverlayCache {
    entries: HashMap<Key, Cached>,
    painter: Option<Painter>,
    cards_error: Option<String>,
    painted: HashMap<Key, Painted>,
    painting: HashSet<Key>,
    /// Pictures the painter could not make: not asked for again, reported once.
    failed: HashSet<Key>,
    /// The words on an expanded card's button, as drawn.
    call_to_action: String,
    frame: u64,
}

impl OverlayCache {
    pub fn new() -> Self {
        // Cards need a CJK font; without one the node still serves images and says why once.
        let painter = CardFonts::noto_cjk_system()
            .and_then(CardRenderer::new)
            .map_err(|e| e.to_string())
            .and_then(|renderer| {
                Painter::start(renderer).map_err(|e| format!("no painter thread: {e}"))
            });
        let (painter, cards_error) = match painter {
            Ok(painter) => (Some(painter), None),
            Err(e) => {
                tracing::warn!(error = %e, "text cards disabled");
                (None, Some(e))
            }
        };
        Self {
            entries: HashMap::new(),
            painter,
            cards_error,
            painted: HashMap::new(),
            painting: HashSet::new(),
            failed: HashSet::new(),
            call_to_action: CardLabels::default().call_to_action,
            frame: 0,
        }
    }

    /// The words on an expanded card's button.
    pub fn call_to_action(&self) -> &str {
        &self.call_to_action
    }

    /// Call once per rendered frame, before [`OverlayCache::get`]s: frees what went unused
    /// and takes in what the painter finished.
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
        self.painted
            .retain(|_, p| frame - p.wanted <= EVICT_AFTER_FRAMES);
        let Some(painter) = &self.painter else {
            return;
        };
        while let Ok((key, result)) = painter.done.try_recv() {
            self.painting.remove(&key);
            match result {
                Ok((image, button)) => {
                    self.painted.insert(
                        key,
                        Painted {
                            image,
                            button,
                            wanted: frame,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(overlay = %key.0, error = %e, "overlay could not be painted");
                    self.failed.insert(key);
                }
            }
        }
    }

    /// The GPU overlay for `spec` drawn as `variant`, its size and its button; for a text
    /// picture still being painted, the nearest form already on the GPU, or `None` (nothing
    /// to draw yet).
    pub fn get(
        &mut self,
        compositor: &mut Compositor,
        spec: &OverlaySpec,
        variant: &OverlayVariant,
    ) -> Result<Option<CachedOverlay>> {
        let key: Key = (spec.id.clone(), spec.fingerprint, variant.clone());
        let found = self.get_exact(compositor, spec, key)?;
        if matches!(spec.content, OverlayContent::Image { .. }) {
            return Ok(found);
        }
        for soon in wanted_soon(spec, variant) {
            // What stops painting (no fonts, no coupon text) is the wanted form's to report.
            let _ = self.paint((spec.id.clone(), spec.fingerprint, soon), spec);
        }
        if found.is_some() {
            return Ok(found);
        }
        Ok(self.stand_in(spec, variant))
    }

    fn get_exact(
        &mut self,
        compositor: &mut Compositor,
        spec: &OverlaySpec,
        key: Key,
    ) -> Result<Option<CachedOverlay>> {
        if let Some(cached) = self.entries.get_mut(&key) {
            cached.last_used = self.frame;
            return Ok(Some(cached.overlay));
        }
        let variant = &key.2;
        let (id, button) = match &spec.content {
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
                let id = compositor
                    .load_overlay_rgba(scaled_width, scaled_height, &rgba)
                    .with_context(|| format!("overlay {:?}", spec.id))?;
                (id, None)
            }
            OverlayContent::Card(_) | OverlayContent::Coupon(_) => {
                let Some(painted) = self.painted.remove(&key) else {
                    self.paint(key, spec)?;
                    return Ok(None);
                };
                let image = painted.image;
                let id = compositor.load_overlay_rgba(image.width, image.height, &image.pixels)?;
                (id, painted.button)
            }
        };
        let image = compositor
            .overlay_image(id)
            .context("overlay just loaded")?;
        let overlay = CachedOverlay {
            id,
            size: (image.width(), image.height()),
            button,
            expanded: variant.expanded,
        };
        self.entries.insert(
            key,
            Cached {
                overlay,
                last_used: self.frame,
            },
        );
        Ok(Some(overlay))
    }

    /// Whether `spec` drawn as `variant` can be drawn at once (an image is loaded when drawn;
    /// one that cannot be made at all does not hold anything up); if not, it is being painted.
    pub fn prepare(&mut self, spec: &OverlaySpec, variant: &OverlayVariant) -> bool {
        if matches!(spec.content, OverlayContent::Image { .. }) || self.painter.is_none() {
            return true;
        }
        let key: Key = (spec.id.clone(), spec.fingerprint, variant.clone());
        if self.entries.contains_key(&key) || self.failed.contains(&key) {
            return true;
        }
        // Painted is ready; anything else is asked for (a coupon without a text fails at once).
        if self.paint(key.clone(), spec).is_err() {
            return true;
        }
        self.painted.contains_key(&key)
    }

    /// Asks the painter for `key` unless it is on the GPU, painted, being painted or failed
    /// (said once, when the painter gave up).
    fn paint(&mut self, key: Key, spec: &OverlaySpec) -> Result<()> {
        if let Some(painted) = self.painted.get_mut(&key) {
            painted.wanted = self.frame;
            return Ok(());
        }
        if self.entries.contains_key(&key)
            || self.painting.contains(&key)
            || self.failed.contains(&key)
        {
            return Ok(());
        }
        let Some(painter) = &self.painter else {
            anyhow::bail!(
                "text cards are disabled: {}",
                self.cards_error.as_deref().unwrap_or("no font")
            );
        };
        let variant = &key.2;
        let paint = match &spec.content {
            OverlayContent::Card(card) => Paint::Card(ProductCard {
                title: card.title.clone(),
                price: card.price.clone(),
                countdown: variant.countdown_secs.map(Duration::from_secs),
                expanded: variant.expanded,
                detail: None,
            }),
            OverlayContent::Coupon(_) => Paint::Coupon(Coupon {
                text: variant
                    .coupon_text
                    .clone()
                    .context("a coupon needs the viewer's text")?,
            }),
            OverlayContent::Image { .. } => return Ok(()),
        };
        match painter.jobs.try_send(PaintJob {
            key: key.clone(),
            paint,
        }) {
            Ok(()) => {
                self.painting.insert(key);
            }
            // Asked again next frame, while it is still wanted.
            Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => anyhow::bail!("the card painter stopped"),
        }
        Ok(())
    }

    /// The form of `spec` on the GPU nearest to `variant`: the same rendition and text, the
    /// same expansion if there is one (the previous countdown second), else the other.
    fn stand_in(&mut self, spec: &OverlaySpec, variant: &OverlayVariant) -> Option<CachedOverlay> {
        let frame = self.frame;
        let (_, cached) = self
            .entries
            .iter_mut()
            .filter(|((id, fingerprint, v), _)| {
                *id == spec.id
                    && *fingerprint == spec.fingerprint
                    && v.lines == variant.lines
                    && v.coupon_text == variant.coupon_text
            })
            .max_by_key(|((_, _, v), c)| (v.expanded == variant.expanded, c.last_used))?;
        cached.last_used = frame;
        Some(cached.overlay)
    }
}

/// The forms of a text overlay a viewer may need next, besides `variant`: a tappable card's
/// other form, and both forms a countdown second later.
fn wanted_soon(spec: &OverlaySpec, variant: &OverlayVariant) -> Vec<OverlayVariant> {
    let mut soon = Vec::with_capacity(3);
    if spec.tap == Some(TapAction::Expand) {
        soon.push(OverlayVariant {
            expanded: !variant.expanded,
            ..variant.clone()
        });
    }
    if let Some(next) = variant.countdown_secs.and_then(|s| s.checked_sub(1)) {
        let later: Vec<OverlayVariant> = std::iter::once(variant.clone())
            .chain(soon.iter().cloned())
            .map(|v| OverlayVariant {
                countdown_secs: Some(next),
                ..v
            })
            .collect();
        soon.extend(later);
    }
    soon
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

#[cfg(test)]
mod tests {
    use super::*;
    use edge_campaign::Campaigns;
    use std::time::Instant;

    fn product_card() -> OverlaySpec {
        let now_unix = (edge_core::sei::unix_now_us() / 1_000_000) as i64;
        Campaigns::embedded()
            .active_overlays("yintai-mall", now_unix)
            .into_iter()
            .find(|o| o.tap == Some(TapAction::Expand))
            .expect("the mall's product card")
            .clone()
    }

    /// Frames until `variant` of `spec` is on the GPU (each frame takes in what was painted).
    fn frames_until_drawn(
        cache: &mut OverlayCache,
        compositor: &mut Compositor,
        spec: &OverlaySpec,
        variant: &OverlayVariant,
    ) -> (usize, CachedOverlay) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for frame in 0.. {
            cache.next_frame(compositor);
            if let Some(drawn) = cache.get(compositor, spec, variant).unwrap() {
                if drawn.expanded == variant.expanded {
                    return (frame, drawn);
                }
            }
            assert!(Instant::now() < deadline, "not painted in 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        unreachable!()
    }

    /// A card is painted off the frame path: nothing is drawn until its picture exists, and
    /// once the collapsed card is drawn its expanded form is painted ahead, so a tap finds it
    /// at once; until then the collapsed card stands in for it.
    #[test]
    fn a_tappable_cards_expanded_form_is_painted_before_the_tap() {
        let mut compositor =
            Compositor::new(edge_compose::CompositorOptions::default()).expect("compositor");
        let mut cache = OverlayCache::new();
        let card = product_card();
        let collapsed = OverlayVariant {
            lines: 720,
            expanded: false,
            coupon_text: None,
            countdown_secs: None,
        };
        let expanded = OverlayVariant {
            expanded: true,
            ..collapsed.clone()
        };
        cache.next_frame(&mut compositor);
        assert!(
            cache
                .get(&mut compositor, &card, &collapsed)
                .unwrap()
                .is_none(),
            "a card never painted is not drawn in the frame that first asks for it"
        );
        let (_, drawn) = frames_until_drawn(&mut cache, &mut compositor, &card, &collapsed);
        assert_eq!(drawn.button, None);

        // The painter had the expanded form queued right behind the collapsed one.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            cache.next_frame(&mut compositor);
            cache.get(&mut compositor, &card, &collapsed).unwrap();
            if cache.prepare(&card, &expanded) {
                break;
            }
            assert!(Instant::now() < deadline, "the expanded form never painted");
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = Instant::now();
        let (frames, tapped) = frames_until_drawn(&mut cache, &mut compositor, &card, &expanded);
        assert_eq!(frames, 0, "the tap's frame draws the expanded card");
        assert!(tapped.button.is_some(), "the expanded card has its button");
        assert!(tapped.size.1 > drawn.size.1, "and is larger");
        eprintln!(
            "expanded card ready in {:.2} ms of the frame path",
            started.elapsed().as_secs_f64() * 1e3
        );

        // A form not painted ahead (another rendition's) draws the nearest one meanwhile.
        let other = OverlayVariant {
            countdown_secs: Some(7),
            ..collapsed.clone()
        };
        let stand_in = cache.get(&mut compositor, &card, &other).unwrap();
        assert!(
            stand_in.is_some_and(|s| !s.expanded && s.id == drawn.id),
            "the collapsed card stands in: {stand_in:?}"
        );
    }
}
