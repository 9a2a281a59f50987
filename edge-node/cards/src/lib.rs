//! Text cards of edge-node campaigns, rasterised on the CPU.
//!
//! Where it sits: a campaign (or a viewer's personal item, or a tap) asks for a product card
//! or a coupon; this crate shapes the text with cosmic-text (HarfRust shaping, CJK from Noto
//! Sans CJK), rasterises glyphs with swash, draws them on a rounded panel with a soft shadow,
//! and returns straight-alpha RGBA8 with even sides. `edge-compose` uploads that with
//! `Compositor::load_overlay_rgba` / `replace_overlay_rgba`, converting it once to
//! premultiplied YUVA; the GPU never sees text.
//!
//! Cards are pure functions of their inputs: the countdown is the time left, passed in, and
//! the size follows the output height, so 720p and 1080p renditions get the same layout.

mod canvas;
mod countdown;
mod coupon;
mod error;
mod fonts;
mod image;
mod panel;
mod product;
mod renderer;
mod text;
mod theme;

pub use countdown::format_countdown;
pub use coupon::Coupon;
pub use error::CardError;
pub use fonts::CardFonts;
pub use image::RgbaImage;
pub use product::{CardLabels, ProductCard, ProductCardPicture};
pub use renderer::CardRenderer;
pub use theme::{MAX_OUTPUT_HEIGHT_PX, MIN_OUTPUT_HEIGHT_PX};
