//! The product card: title, big price, countdown chip; expanded (the answer to a tap) it grows
//! and adds a detail line and a call-to-action button.

use std::time::Duration;

use crate::canvas::RectPx;
use crate::countdown::format_countdown;
use crate::image::RgbaImage;
use crate::panel;
use crate::text::{ShapedText, TextStack, TextStyle};
use crate::theme::{self, Scale};
use std::sync::Arc;

/// What a product card shows. `countdown` is the time left, computed by the caller from its
/// own clock, so the card is a pure function of this value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProductCard {
    pub title: String,
    /// Shown as given, currency sign included ("¥199").
    pub price: String,
    pub countdown: Option<Duration>,
    pub expanded: bool,
    /// Shown only when expanded.
    pub detail: Option<String>,
}

/// Fixed words on the cards, in the campaign's language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardLabels {
    /// Before the countdown: "剩余 12:34".
    pub countdown_prefix: String,
    /// The expanded card's button.
    pub call_to_action: String,
}

impl Default for CardLabels {
    fn default() -> Self {
        Self {
            countdown_prefix: "剩余".into(),
            call_to_action: "点击购买".into(),
        }
    }
}

/// An expanded card is this much larger, so the tap is answered visibly even before the
/// viewer reads the new lines.
const EXPANDED_FACTOR: f32 = 1.2;

// Sizes in reference (1080p) pixels.
const PADDING: f32 = 28.0;
const RADIUS: f32 = 20.0;
const MIN_TEXT_WIDTH: f32 = 220.0;
const MAX_TEXT_WIDTH: f32 = 520.0;
const GAP: f32 = 10.0;
const CHIP_PAD_X: f32 = 12.0;
const CHIP_PAD_Y: f32 = 4.0;
const BUTTON_PAD_Y: f32 = 14.0;

/// A rendered product card and where its call-to-action button is, so a viewer's client can
/// tell a tap on the button from a tap elsewhere on the card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductCardPicture {
    pub image: RgbaImage,
    /// The button of an expanded card in the image's pixels, `[x, y, width, height]` (the
    /// pixels its shape touches).
    pub button: Option<[u32; 4]>,
}

pub fn render(
    text: &mut TextStack,
    labels: &CardLabels,
    card: &ProductCard,
    scale: Scale,
) -> ProductCardPicture {
    let reference = Layout::new(text, labels, card, Scale::size_reference()).canvas_size();
    let canvas = (
        scale.side_from_reference(reference.0),
        scale.side_from_reference(reference.1),
    );
    Layout::new(text, labels, card, scale).draw(text, canvas)
}

/// A card's text shaped for one output, and the room it needs.
struct Layout {
    /// The output's scale, enlarged for an expanded card.
    s: Scale,
    title: Arc<ShapedText>,
    price: Arc<ShapedText>,
    countdown: Option<Arc<ShapedText>>,
    detail: Option<Arc<ShapedText>>,
    button: Option<Arc<ShapedText>>,
    content_width: f32,
    content_height: f32,
}

impl Layout {
    fn new(text: &mut TextStack, labels: &CardLabels, card: &ProductCard, scale: Scale) -> Self {
        let s = if card.expanded {
            scale.times(EXPANDED_FACTOR)
        } else {
            scale
        };
        let max_text_width = s.px(MAX_TEXT_WIDTH);
        let style = |size: f32, line_height: f32, bold: bool, max_lines: usize| TextStyle {
            size_px: s.px(size),
            line_height,
            bold,
            max_width_px: Some(max_text_width),
            max_lines,
        };

        let title = text.shape(&card.title, style(40.0, 1.3, true, 2));
        let price = text.shape(&card.price, style(72.0, 1.15, true, 1));
        let countdown = card.countdown.map(|left| {
            let line = format!("{} {}", labels.countdown_prefix, format_countdown(left));
            text.shape(&line, style(28.0, 1.3, false, 1))
        });
        let detail = card
            .detail
            .as_deref()
            .filter(|detail| card.expanded && !detail.trim().is_empty())
            .map(|detail| text.shape(detail, style(30.0, 1.45, false, 3)));
        let button = card
            .expanded
            .then(|| text.shape(&labels.call_to_action, style(34.0, 1.3, true, 1)));

        let gap = s.px(GAP);
        let mut content_width = title.width.max(price.width);
        let mut content_height = title.height + gap + price.height;
        if let Some(countdown) = &countdown {
            content_width = content_width.max(countdown.width + 2.0 * s.px(CHIP_PAD_X));
            content_height += gap + countdown.height + 2.0 * s.px(CHIP_PAD_Y);
        }
        if let Some(detail) = &detail {
            content_width = content_width.max(detail.width);
            // Divider, then the detail.
            content_height += 2.0 * gap + detail.height;
        }
        if let Some(button) = &button {
            let button_pad_y = s.px(BUTTON_PAD_Y);
            content_width = content_width.max(button.width + 4.0 * button_pad_y);
            content_height += 2.0 * gap + button.height + 2.0 * button_pad_y;
        }
        Self {
            s,
            title,
            price,
            countdown,
            detail,
            button,
            content_width: content_width.max(s.px(MIN_TEXT_WIDTH)).ceil(),
            content_height,
        }
    }

    /// The canvas this layout needs (panel, padding and shadow).
    fn canvas_size(&self) -> (u32, u32) {
        let padding = self.s.px(PADDING);
        panel::canvas_size(
            self.content_width + 2.0 * padding,
            self.content_height + 2.0 * padding,
            self.s,
        )
    }

    /// Draws the card on a canvas of `canvas` pixels, its panel filling it.
    fn draw(self, text: &mut TextStack, canvas: (u32, u32)) -> ProductCardPicture {
        let Layout {
            s,
            title,
            price,
            countdown,
            detail,
            button,
            ..
        } = self;
        let (gap, chip_pad_x, chip_pad_y) = (s.px(GAP), s.px(CHIP_PAD_X), s.px(CHIP_PAD_Y));
        let button_pad_y = s.px(BUTTON_PAD_Y);
        let padding = s.px(PADDING);
        let mut frame = panel::frame(canvas, s.px(RADIUS), s);
        // The divider and the button span the panel, whatever its size came to.
        let content_width = (frame.panel.width() - 2.0 * padding).floor();
        let panel_rect = frame.panel;
        let radius = frame.radius_px;
        panel::draw(&mut frame, s, theme::PANEL, |x, y| {
            panel_rect.rounded_distance(radius, x, y)
        });

        let left = (panel_rect.x0 + padding).round();
        let mut y = (panel_rect.y0 + padding).round();
        text.draw(&mut frame.canvas, &title, left, y, theme::TITLE);
        y += title.height + gap;
        text.draw(&mut frame.canvas, &price, left, y, theme::ACCENT);
        y += price.height;
        if let Some(countdown) = &countdown {
            y += gap;
            let chip = RectPx::from_origin_size(
                left,
                y,
                countdown.width + 2.0 * chip_pad_x,
                countdown.height + 2.0 * chip_pad_y,
            );
            let chip_radius = chip.height() / 2.0;
            frame
                .canvas
                .fill_shape(chip, 1.0, theme::ACCENT_TINT, |x, y| {
                    chip.rounded_distance(chip_radius, x, y)
                });
            let text_y = (y + chip_pad_y).round();
            text.draw(
                &mut frame.canvas,
                countdown,
                left + chip_pad_x,
                text_y,
                theme::ACCENT,
            );
            y += chip.height();
        }
        if let Some(detail) = &detail {
            y += gap;
            let divider = RectPx::from_origin_size(left, y, content_width, s.px(2.0).max(1.0));
            frame
                .canvas
                .fill_shape(divider, 1.0, theme::DIVIDER, |x, y| {
                    divider.rounded_distance(0.0, x, y)
                });
            y += gap;
            text.draw(&mut frame.canvas, detail, left, y.round(), theme::DETAIL);
            y += detail.height;
        }
        let mut button_box = None;
        if let Some(button) = &button {
            y += 2.0 * gap;
            let shape = RectPx::from_origin_size(
                left,
                y,
                content_width,
                button.height + 2.0 * button_pad_y,
            );
            let button_radius = shape.height() / 2.0;
            frame.canvas.fill_shape(shape, 1.0, theme::ACCENT, |x, y| {
                shape.rounded_distance(button_radius, x, y)
            });
            let text_x = (left + (content_width - button.width) / 2.0).round();
            text.draw(
                &mut frame.canvas,
                button,
                text_x,
                (y + button_pad_y).round(),
                theme::ON_ACCENT,
            );
            button_box = Some(pixel_box(shape));
        }
        ProductCardPicture {
            image: frame.canvas.into_straight_rgba(),
            button: button_box,
        }
    }
}

/// The whole pixels a shape touches, `[x, y, width, height]`.
fn pixel_box(shape: RectPx) -> [u32; 4] {
    let (x0, y0) = (shape.x0.max(0.0).floor(), shape.y0.max(0.0).floor());
    let (x1, y1) = (shape.x1.max(0.0).ceil(), shape.y1.max(0.0).ceil());
    [x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32]
}
