//! The viewer's control messages: what a viewer may ask for while it watches.
//!
//! One JSON object per message on the viewer's control track (see `edge_deliver::control`):
//!
//! ```json
//! {"type": "zoom", "x": 0.25, "y": 0.25, "w": 0.5, "h": 0.5}
//! {"type": "zoom", "reset": true}
//! {"type": "tap", "x": 0.5, "y": 0.8}
//! {"type": "position", "lat": 30.2745, "lon": 120.1633}
//! ```
//!
//! Coordinates are fractions of the frame, so a message means the same at every rendition:
//! `zoom` names the part of the *source* picture to fill the viewer's frame with (the node keeps
//! the output aspect ratio and its `max_zoom`); `tap` names a point of the frame the viewer sees.

use serde::Deserialize;

/// A parsed, range-checked control message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ControlMessage {
    Zoom(NormalizedRect),
    ZoomReset,
    Tap { x: f64, y: f64 },
    Position { lat: f64, lon: f64 },
}

/// A rectangle in fractions of the frame: `x + w <= 1`, `y + h <= 1`, `w, h > 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormalizedRect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl NormalizedRect {
    pub fn new(x: f64, y: f64, w: f64, h: f64) -> Result<Self, String> {
        let finite = [x, y, w, h].iter().all(|v| v.is_finite());
        if !finite {
            return Err("zoom: x, y, w and h must be numbers".into());
        }
        if w <= 0.0 || h <= 0.0 {
            return Err(format!("zoom: w and h must be above 0 (got {w}, {h})"));
        }
        const SLACK: f64 = 1e-9;
        if x < 0.0 || y < 0.0 || x + w > 1.0 + SLACK || y + h > 1.0 + SLACK {
            return Err(format!(
                "zoom: the rectangle {x},{y} {w}x{h} must lie inside the frame (fractions 0..1)"
            ));
        }
        Ok(Self { x, y, w, h })
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum Wire {
    Zoom {
        x: Option<f64>,
        y: Option<f64>,
        w: Option<f64>,
        h: Option<f64>,
        #[serde(default)]
        reset: bool,
    },
    Tap {
        x: f64,
        y: f64,
    },
    Position {
        lat: f64,
        lon: f64,
    },
}

/// Parses one message; the error says exactly what was wrong, for the node's log.
pub fn parse(message: &[u8]) -> Result<ControlMessage, String> {
    let text = std::str::from_utf8(message).map_err(|_| "control message is not UTF-8")?;
    let wire: Wire = serde_json::from_str(text).map_err(|e| format!("control message: {e}"))?;
    match wire {
        Wire::Zoom { reset: true, .. } => Ok(ControlMessage::ZoomReset),
        Wire::Zoom {
            x: Some(x),
            y: Some(y),
            w: Some(w),
            h: Some(h),
            ..
        } => Ok(ControlMessage::Zoom(NormalizedRect::new(x, y, w, h)?)),
        Wire::Zoom { .. } => Err("zoom: needs x, y, w and h, or \"reset\": true".into()),
        Wire::Tap { x, y } => {
            if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(format!(
                    "tap: x and y must be fractions 0..1 (got {x}, {y})"
                ));
            }
            Ok(ControlMessage::Tap { x, y })
        }
        Wire::Position { lat, lon } => {
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(format!(
                    "position: lat must be -90..90 and lon -180..180 (got {lat}, {lon})"
                ));
            }
            Ok(ControlMessage::Position { lat, lon })
        }
    }
}

/// The wire form of a message, for `edge-node view` and tests.
pub fn encode(message: &ControlMessage) -> String {
    match message {
        ControlMessage::Zoom(r) => serde_json::json!({
            "type": "zoom", "x": r.x, "y": r.y, "w": r.w, "h": r.h
        }),
        ControlMessage::ZoomReset => serde_json::json!({"type": "zoom", "reset": true}),
        ControlMessage::Tap { x, y } => serde_json::json!({"type": "tap", "x": x, "y": y}),
        ControlMessage::Position { lat, lon } => {
            serde_json::json!({"type": "position", "lat": lat, "lon": lon})
        }
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for message in [
            ControlMessage::Zoom(NormalizedRect::new(0.25, 0.25, 0.5, 0.5).unwrap()),
            ControlMessage::ZoomReset,
            ControlMessage::Tap { x: 0.5, y: 0.75 },
            ControlMessage::Position {
                lat: 30.2745,
                lon: 120.1633,
            },
        ] {
            assert_eq!(parse(encode(&message).as_bytes()), Ok(message));
        }
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let cases = [
            (&b"\xff\xfe"[..], "not UTF-8"),
            (b"{", "control message"),
            (br#"{"type":"fly"}"#, "unknown variant"),
            (br#"{"type":"zoom","x":0.5}"#, "needs x, y, w and h"),
            (
                br#"{"type":"zoom","x":0.8,"y":0,"w":0.5,"h":0.5}"#,
                "inside the frame",
            ),
            (br#"{"type":"zoom","x":0,"y":0,"w":0,"h":0.5}"#, "above 0"),
            (br#"{"type":"tap","x":2,"y":0}"#, "fractions"),
            (br#"{"type":"position","lat":91,"lon":0}"#, "-90..90"),
            (br#"{"type":"position","lat":30}"#, "missing field `lon`"),
            (
                br#"{"type":"tap","x":0.1,"y":0.1,"extra":1}"#,
                "unknown field",
            ),
        ];
        for (message, expected) in cases {
            let err = parse(message).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }
}
