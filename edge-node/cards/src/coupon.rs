//! The personal coupon: one line of already personalised text ("李雷, 20% off today") in white
//! on an accent ticket with a half-circle notch cut from each side.

use crate::canvas::circle_distance;
use crate::image::RgbaImage;
use crate::panel;
use crate::text::{ShapedText, TextStack, TextStyle};
use crate::theme::{self, Scale};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Coupon {
    /// Already personalised; shown on one line, cut with an ellipsis past the card's width.
    pub text: String,
}

// Sizes in reference (1080p) pixels.
const PAD_X: f32 = 48.0;
const PAD_Y: f32 = 22.0;
const RADIUS: f32 = 16.0;
const NOTCH_RADIUS: f32 = 14.0;
const MIN_TEXT_WIDTH: f32 = 160.0;
const MAX_TEXT_WIDTH: f32 = 760.0;

pub fn render(text: &mut TextStack, coupon: &Coupon, scale: Scale) -> RgbaImage {
    let reference = ticket_canvas(text, coupon, Scale::size_reference());
    let canvas = (
        scale.side_from_reference(reference.0),
        scale.side_from_reference(reference.1),
    );
    let line = shape(text, coupon, scale);
    let pad_y = scale.px(PAD_Y);
    let mut frame = panel::frame(canvas, scale.px(RADIUS), scale);
    let ticket = frame.panel;
    let radius = frame.radius_px;
    let notch = scale.px(NOTCH_RADIUS);
    let middle = (ticket.y0 + ticket.y1) / 2.0;
    panel::draw(&mut frame, scale, theme::ACCENT, |x, y| {
        let body = ticket.rounded_distance(radius, x, y);
        let left_notch = circle_distance(ticket.x0, middle, notch, x, y);
        let right_notch = circle_distance(ticket.x1, middle, notch, x, y);
        // Subtracting a disc from a shape is the max with its negated distance.
        body.max(-left_notch).max(-right_notch)
    });
    // Centred on the ticket, whatever size it came to.
    let text_x = ((ticket.x0 + ticket.x1 - line.width) / 2.0).round();
    let text_y = (ticket.y0 + pad_y).round();
    text.draw(&mut frame.canvas, &line, text_x, text_y, theme::ON_ACCENT);
    frame.canvas.into_straight_rgba()
}

fn shape(text: &mut TextStack, coupon: &Coupon, scale: Scale) -> Arc<ShapedText> {
    text.shape(
        &coupon.text,
        TextStyle {
            size_px: scale.px(40.0),
            line_height: 1.3,
            bold: true,
            max_width_px: Some(scale.px(MAX_TEXT_WIDTH)),
            max_lines: 1,
        },
    )
}

/// The canvas the coupon's ticket and shadow need at `scale`.
fn ticket_canvas(text: &mut TextStack, coupon: &Coupon, scale: Scale) -> (u32, u32) {
    let line = shape(text, coupon, scale);
    let text_width = line.width.max(scale.px(MIN_TEXT_WIDTH)).ceil();
    panel::canvas_size(
        text_width + 2.0 * scale.px(PAD_X),
        line.height + 2.0 * scale.px(PAD_Y),
        scale,
    )
}
