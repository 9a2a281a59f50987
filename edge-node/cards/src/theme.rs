//! The cards' look: colours, and sizes in pixels of a 1080-line output, scaled to the output
//! height so a card covers the same share of the picture at 720p and at 4K.

use crate::canvas::Rgba8;
use crate::error::CardError;

pub const PANEL: Rgba8 = Rgba8([255, 255, 255, 242]);
pub const SHADOW: Rgba8 = Rgba8([0, 0, 0, 96]);
pub const TITLE: Rgba8 = Rgba8([28, 28, 30, 255]);
/// The red Chinese shops use for prices and buttons.
pub const ACCENT: Rgba8 = Rgba8([228, 57, 60, 255]);
pub const ACCENT_TINT: Rgba8 = Rgba8([253, 236, 236, 255]);
pub const DETAIL: Rgba8 = Rgba8([88, 88, 94, 255]);
pub const DIVIDER: Rgba8 = Rgba8([0, 0, 0, 28]);
pub const ON_ACCENT: Rgba8 = Rgba8([255, 255, 255, 255]);

/// Output heights the cards are laid out for: from 240p up to 8K.
pub const MIN_OUTPUT_HEIGHT_PX: u32 = 240;
pub const MAX_OUTPUT_HEIGHT_PX: u32 = 4320;
/// The output height the sizes below are given for.
const REFERENCE_HEIGHT_PX: f32 = 1080.0;
/// A card's size is that of its layout at this output height, scaled: shaped text does not
/// grow exactly in proportion to its font size, and a card must cover the same share of
/// every rendition (the campaign's reference height, which image overlays scale from too).
pub const SIZE_REFERENCE_LINES: u32 = 720;

/// Pixels per reference pixel for one output height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale(f32);

impl Scale {
    pub fn for_output_height(output_height_px: u32) -> Result<Self, CardError> {
        if !(MIN_OUTPUT_HEIGHT_PX..=MAX_OUTPUT_HEIGHT_PX).contains(&output_height_px) {
            return Err(CardError::OutputHeight {
                output_height_px,
                min: MIN_OUTPUT_HEIGHT_PX,
                max: MAX_OUTPUT_HEIGHT_PX,
            });
        }
        Ok(Self(output_height_px as f32 / REFERENCE_HEIGHT_PX))
    }

    /// The same scale enlarged by `factor` (an expanded card).
    pub fn times(self, factor: f32) -> Self {
        Self(self.0 * factor)
    }

    /// A reference size in output pixels.
    pub fn px(self, reference_px: f32) -> f32 {
        reference_px * self.0
    }

    /// The scale at which a card's size is decided (see [`SIZE_REFERENCE_LINES`]).
    pub fn size_reference() -> Self {
        Self(SIZE_REFERENCE_LINES as f32 / REFERENCE_HEIGHT_PX)
    }

    /// A card side measured at [`Scale::size_reference`], at this scale: the nearest even
    /// number of pixels, so the card covers the same share of every output to a pixel.
    pub fn side_from_reference(self, reference_side: u32) -> u32 {
        let exact = reference_side as f32 * self.0 / Self::size_reference().0;
        (((exact / 2.0).round() as u32) * 2).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_follows_output_height() {
        assert_eq!(Scale::for_output_height(1080).unwrap().px(40.0), 40.0);
        assert_eq!(Scale::for_output_height(720).unwrap().px(30.0), 20.0);
        assert_eq!(Scale::for_output_height(2160).unwrap().px(30.0), 60.0);
    }

    #[test]
    fn absurd_output_heights_are_refused() {
        for height in [0, 100, 10_000] {
            let error = Scale::for_output_height(height).unwrap_err();
            assert!(error.to_string().contains(&height.to_string()));
        }
    }
}
