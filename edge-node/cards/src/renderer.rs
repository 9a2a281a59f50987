//! The long-lived renderer: owns the fonts, the shaping cache and the glyph cache. Each call
//! renders one card into a fresh image; nothing else is kept per card.

use crate::coupon::{self, Coupon};
use crate::error::CardError;
use crate::fonts::{self, CardFonts};
use crate::image::RgbaImage;
use crate::product::{self, CardLabels, ProductCard, ProductCardPicture};
use crate::text::TextStack;
use crate::theme::Scale;

pub struct CardRenderer {
    text: TextStack,
    labels: CardLabels,
}

impl std::fmt::Debug for CardRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRenderer")
            .field("family", &self.text.family())
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl CardRenderer {
    /// Loads exactly the given font files (no system font scan) with the default labels.
    pub fn new(fonts: CardFonts) -> Result<Self, CardError> {
        Ok(Self {
            text: TextStack::new(fonts::load(&fonts)?),
            labels: CardLabels::default(),
        })
    }

    /// The fixed words on product cards (countdown prefix, button), in the campaign's language.
    pub fn set_labels(&mut self, labels: CardLabels) {
        self.labels = labels;
    }

    /// The font family the cards are drawn in ("Noto Sans CJK SC").
    pub fn font_family(&self) -> &str {
        self.text.family()
    }

    /// A product card laid out for a picture `output_height_px` lines high.
    pub fn product_card(
        &mut self,
        card: &ProductCard,
        output_height_px: u32,
    ) -> Result<RgbaImage, CardError> {
        Ok(self.product_card_picture(card, output_height_px)?.image)
    }

    /// A product card as [`CardRenderer::product_card`] draws it, with where its button is.
    pub fn product_card_picture(
        &mut self,
        card: &ProductCard,
        output_height_px: u32,
    ) -> Result<ProductCardPicture, CardError> {
        let scale = Scale::for_output_height(output_height_px)?;
        Ok(product::render(&mut self.text, &self.labels, card, scale))
    }

    /// A personal coupon laid out for a picture `output_height_px` lines high.
    pub fn coupon(
        &mut self,
        coupon: &Coupon,
        output_height_px: u32,
    ) -> Result<RgbaImage, CardError> {
        let scale = Scale::for_output_height(output_height_px)?;
        Ok(coupon::render(&mut self.text, coupon, scale))
    }

    /// Characters of `text` that the loaded fonts cannot draw, so a campaign check can reject
    /// text that would show as empty boxes.
    pub fn unsupported_chars(&mut self, text: &str) -> Vec<char> {
        self.text.unsupported_chars(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node renders cards off the frame path, on another thread than the one that made
    /// the renderer; this fails to compile if a dependency ever stops being `Send`.
    #[test]
    fn renderer_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<CardRenderer>();
    }
}
