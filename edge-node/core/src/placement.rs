//! Where an overlay goes on an output frame: an anchor plus margins, resolved to pixels.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    #[default]
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

/// Top-left pixel of an overlay of `overlay` size anchored inside `frame`, `margin` pixels from
/// the anchored edges. Positions are rounded down to even numbers so the overlay lines up with
/// the 2x2 chroma grid of I420 (an odd offset would smear its colours over two chroma cells).
/// An overlay larger than the frame is placed at the anchor and clipped by the compositor.
pub fn resolve(
    anchor: Anchor,
    margin: (i32, i32),
    overlay: (u32, u32),
    frame: (u32, u32),
) -> (i32, i32) {
    let (mx, my) = margin;
    let free_w = frame.0 as i32 - overlay.0 as i32;
    let free_h = frame.1 as i32 - overlay.1 as i32;
    let x = match anchor {
        Anchor::TopLeft | Anchor::Left | Anchor::BottomLeft => mx,
        Anchor::Top | Anchor::Center | Anchor::Bottom => free_w / 2 + mx,
        Anchor::TopRight | Anchor::Right | Anchor::BottomRight => free_w - mx,
    };
    let y = match anchor {
        Anchor::TopLeft | Anchor::Top | Anchor::TopRight => my,
        Anchor::Left | Anchor::Center | Anchor::Right => free_h / 2 + my,
        Anchor::BottomLeft | Anchor::Bottom | Anchor::BottomRight => free_h - my,
    };
    (x & !1, y & !1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_and_centre_of_720p() {
        let frame = (1280, 720);
        assert_eq!(
            resolve(Anchor::TopLeft, (24, 24), (200, 50), frame),
            (24, 24)
        );
        assert_eq!(
            resolve(Anchor::TopRight, (24, 24), (200, 50), frame),
            (1056, 24)
        );
        assert_eq!(
            resolve(Anchor::BottomRight, (24, 24), (200, 50), frame),
            (1056, 646)
        );
        assert_eq!(
            resolve(Anchor::Center, (0, 0), (200, 50), frame),
            (540, 334)
        );
    }

    #[test]
    fn positions_are_chroma_aligned() {
        let (x, y) = resolve(Anchor::BottomRight, (3, 5), (101, 33), (1280, 720));
        assert_eq!((x % 2, y % 2), (0, 0));
    }
}
