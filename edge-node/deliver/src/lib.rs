//! Delivery: the last stage of edge-node's data flow.
//!
//! ```text
//! encode (one H.264 encoder per rendering) ──► RenderingPublisher::write ──► moq-lite origin
//!        ──► one WebTransport/QUIC session per viewer, scoped to the rendering it was routed to
//! ```
//!
//! Each *rendering* (one render group: same zone, overlays, zoom, rendition) is encoded once and
//! published once, as a `hang` broadcast (catalog, `avc3` video track with one MoQ group per
//! GOP, and the overlays it drew: [`OVERLAYS_TRACK_NAME`]) under its own prefix
//! `<rendering>/live` on a single origin (which is what `--publish-to` mirrors to a relay).
//! Every viewer session is routed by a [`SessionRouter`] from its URL *before* it is accepted,
//! and served a broadcast of its own, its *feed*, seen as `live`. The
//! encoder writes each access unit once, into its rendering's track; every viewer's forwarder
//! reads that track as a consumer and writes into the viewer's feed, sharing the bytes, so the
//! encoder's cost grows with renderings, not with viewers. [`DeliveryServer::move_viewer`] moves a viewer
//! to another rendering at that rendering's next keyframe, with no gap and no undecodable frame.
//! A viewer talks back on a MoQ track it publishes itself ([`control`]).
//!
//! Alongside QUIC, the same port number on TCP serves `GET /certificate.sha256` so browsers can
//! pin the short-lived self-signed certificate (`serverCertificateHashes`), and the viewer page
//! at `/` (built from `web/` by setup, found at run time: [`WEB_DIR_ENV`]).
//!
//! [`client`] is the matching subscriber used by `edge-node view`, the demo and the bench.
//!
//! # Runtime
//! [`DeliveryServer::bind`] and everything in [`client`] must run inside a multi-threaded tokio
//! runtime, which must outlive the server: the accept loops, the origin driver and one driver per
//! session are spawned on it. [`RenderingPublisher`] is plain synchronous code and is meant to be
//! called from the encoder's own (non-async) thread.

mod cert_http;
pub mod client;
pub mod control;
mod error;
mod feed;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod net;
mod overlay_log;
mod pacing;
mod publisher;
mod qmux_transport;
mod router;
mod server;
mod sessions;
mod tls;
mod uplink;
mod web_root;
mod websocket;

pub use error::DeliverError;
pub use pacing::DeliveryStats;
pub use publisher::{PublisherStats, RenderingPublisher, VideoTrackInfo};
pub use router::{
    Refusal, SessionRouter, ViewerRequest, ViewerTransport, MAX_REFUSAL_REASON_BYTES,
    MAX_RENDERING_NAME_BYTES,
};
pub use server::{DeliveryServer, ServerConfig, CLOSE_CODE_REFUSED, DEFAULT_LISTEN};
pub use sessions::SessionInfo;
pub use tls::TlsSource;
pub use uplink::{RelayTrust, Uplink, UplinkConfig, UplinkStatus};
pub use web_root::WEB_DIR_ENV;

/// The broadcast name every viewer subscribes to; each session sees its own rendering under it.
pub const BROADCAST_NAME: &str = "live";

/// The hang track name of the video rendition inside each broadcast.
pub const VIDEO_TRACK_NAME: &str = "video";

/// The track of each viewer's `live` broadcast carrying what the node understood in the
/// picture: one JSON message per group, timestamped with the video frame it describes.
pub const METADATA_TRACK_NAME: &str = "detections";

/// The track of each viewer's `live` broadcast saying which overlays its rendering drew where
/// (id, kind, rectangle in the picture's pixels, tap action, product): one JSON message per
/// group, stamped with the time of the video frame from which it holds, sent when the layout
/// changes and again at every keyframe the viewer receives (README, "Overlays track").
pub const OVERLAYS_TRACK_NAME: &str = "overlays";

/// Installs rustls' ring provider as the process default, once.
///
/// quinn, rustls and web-transport-quinn each pick "the default provider"; if another crate in
/// the process compiles aws-lc-rs too, that choice panics unless one is installed explicitly.
/// Called by the server and the client before any TLS configuration is built; safe to call
/// from anywhere, any number of times.
pub fn install_crypto_provider() {
    // Err means some provider is already installed (ours or the embedding binary's): fine either
    // way, because every config this crate builds names ring explicitly.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
