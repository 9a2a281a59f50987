//! The bodies of edge-node's fuzz targets, one function per parser of outside bytes.
//!
//! Each is a plain function so that `cargo test` on stable (the `replay` tests below) runs every
//! corpus file and every crash reproducer through exactly what `cargo fuzz` runs: a known crash
//! fails CI without a nightly toolchain. A function panics only when the parser it drives
//! breaks a promise (a panic inside the parser, or an unbounded result it documents as bounded).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use base64::Engine as _;
use edge_campaign::{Campaigns, Format};
use edge_control::auth::{AuthConfig, ViewerAuth};
use edge_core::{annexb, sei};
use edge_deliver::{Refusal, ViewerRequest, MAX_REFUSAL_REASON_BYTES};

/// `edge_deliver`'s `MAX_LOGGED_QUERY_BYTES` (not exported): the longest query a log shows.
const MAX_LOGGED_QUERY_BYTES: usize = 512;

/// Annex B framing as the ingest and the viewer client run it on network bytes.
pub fn annexb(data: &[u8]) {
    let nals: Vec<&[u8]> = annexb::nal_units(data).collect();
    for nal in &nals {
        assert!(!nal.is_empty(), "the iterator yields no empty NAL unit");
        let _ = annexb::starts_picture(nal);
        let unescaped = annexb::unescape_rbsp(nal);
        assert!(unescaped.len() <= nal.len());
        let escaped = annexb::escape_rbsp(&unescaped);
        assert_eq!(
            annexb::unescape_rbsp(&escaped),
            unescaped,
            "escaping round-trips"
        );
    }
    let units = annexb::split_access_units(data);
    let regrouped: usize = units.iter().map(|u| annexb::nal_units(u).count()).sum();
    assert_eq!(
        regrouped,
        nals.len(),
        "access units hold every NAL unit once"
    );
    for unit in &units {
        let _ = annexb::is_idr(unit);
        let with = annexb::insert_before_first_slice(unit, &[6, 5, 1, 0x80]);
        assert_eq!(
            annexb::nal_units(&with).count(),
            annexb::nal_units(unit).count() + 1
        );
    }
}

/// The frame-clock SEI read from an access unit, and a stamp written into one.
pub fn sei(data: &[u8]) {
    let _ = sei::read_frame_clock(data);
    let stamped = sei::stamp_access_unit(data, 1_764_000_000_123_456);
    assert_eq!(sei::read_frame_clock(&stamped), Some(1_764_000_000_123_456));
}

/// A viewer's control message (JSON from a data stream).
pub fn viewer_control(data: &[u8]) {
    let _ = edge_control::viewer_control::parse(data);
}

/// A viewer request's query as the router and the logs read it.
pub fn url_query(data: &[u8]) {
    let request = ViewerRequest {
        session_id: 1,
        remote: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4443),
        path: "/".into(),
        query: String::from_utf8_lossy(data).into_owned(),
        transport: edge_deliver::ViewerTransport::WebTransport,
    };
    let logged = request.loggable_query();
    assert!(
        logged.len() <= MAX_LOGGED_QUERY_BYTES,
        "logged query bounded"
    );
    let _ = request.query_pairs();
    for key in ["token", "zone", "name", "lat", "lon", "rendition"] {
        if let Some(value) = request.query_value(key) {
            let refusal = Refusal::new(format!("{key}={value} refused"));
            assert!(refusal.reason.len() <= MAX_REFUSAL_REASON_BYTES);
            assert!(!refusal.reason.chars().any(char::is_control));
            let _ = value.parse::<f64>();
        }
    }
    if let Some(zoom) = request.query_value("zoom") {
        let _ = edge_control::routing::parse_zoom(&zoom);
    }
}

/// `zoom=x,y,w,h` on its own (the query target reaches it only behind `zoom=`).
pub fn zoom(data: &[u8]) {
    if let Ok(rect) = edge_control::routing::parse_zoom(&String::from_utf8_lossy(data)) {
        let _ = rect;
    }
}

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret!";

fn viewer_auth() -> &'static ViewerAuth {
    static AUTH: OnceLock<ViewerAuth> = OnceLock::new();
    AUTH.get_or_init(|| {
        ViewerAuth::from_config(&AuthConfig {
            required: true,
            hs256_secret: Some(SECRET.into()),
            es256_public_key: None,
        })
        .expect("valid auth config")
        .expect("auth required")
    })
}

/// JWT handling. First byte even: the input is the token string itself. Odd: the rest is a
/// header and claims (split at the first `.`) signed with the node's own secret, so the fuzzer
/// reaches claims decoding behind a valid signature.
pub fn jwt(data: &[u8]) {
    let auth = viewer_auth();
    let Some((&mode, rest)) = data.split_first() else {
        let _ = auth.verify(None);
        return;
    };
    if mode % 2 == 0 {
        let _ = auth.verify(Some(&String::from_utf8_lossy(rest)));
        return;
    }
    let (header, claims) = match rest.iter().position(|&b| b == b'.') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", engine.encode(header), engine.encode(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
            .expect("HMAC signs anything");
    if let Ok(claims) = auth.verify(Some(&format!("{message}.{signature}"))) {
        let _ = edge_control::auth::zone_allowed(&claims, "zone");
    }
}

/// A campaign file in TOML.
pub fn campaign_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Campaigns::parse(text, Format::Toml, "fuzz.toml");
    }
}

/// A campaign file in YAML.
pub fn campaign_yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Campaigns::parse(text, Format::Yaml, "fuzz.yaml");
    }
}

/// A MEC Location API `userList` reply.
pub fn mec_user_list(data: &[u8]) {
    edge_location::fuzzing::user_list_reply(data);
}

/// A MEC zonal-traffic subscription reply or problem details.
pub fn mec_subscription(data: &[u8]) {
    edge_location::fuzzing::subscription_reply(data);
}

/// A zonal-presence notification POSTed to the node.
pub fn mec_notification(data: &[u8]) {
    let _ = edge_location::fuzzing::notification(data);
}

/// The hang catalog JSON the viewer client reads first.
pub fn hang_catalog(data: &[u8]) {
    let _ = hang::Catalog::<()>::from_slice(data);
}

/// A hang container frame, then its payload as the client reads it (IDR test, frame clock).
pub fn hang_frame(data: &[u8]) {
    if let Ok(frame) = hang::container::Frame::decode(bytes::Bytes::copy_from_slice(data)) {
        let payload: &[u8] = &frame.payload;
        let _ = annexb::is_idr(payload);
        let _ = sei::read_frame_clock(payload);
    }
}

/// The node config and its environment overrides (the body lives in edge-node, whose tests
/// replay `corpus/node_config/` without this crate's `node` feature).
#[cfg(feature = "node")]
pub fn node_config(data: &[u8]) {
    edge_node::fuzzing::node_config(data);
}

/// A target's body: one input, no result (a panic is the finding).
pub type Target = fn(&[u8]);

/// A request head on the node's TCP port (page, certificate hash, WebSocket upgrade).
pub fn http_request_head(data: &[u8]) {
    edge_deliver::fuzzing::http_request_head(data);
}

/// Every target by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("annexb", annexb),
    ("sei", sei),
    ("viewer_control", viewer_control),
    ("url_query", url_query),
    ("zoom", zoom),
    ("jwt", jwt),
    ("campaign_toml", campaign_toml),
    ("campaign_yaml", campaign_yaml),
    ("mec_user_list", mec_user_list),
    ("mec_subscription", mec_subscription),
    ("mec_notification", mec_notification),
    ("hang_catalog", hang_catalog),
    ("hang_frame", hang_frame),
    ("http_request_head", http_request_head),
    #[cfg(feature = "node")]
    ("node_config", node_config),
];

#[cfg(test)]
mod replay {
    use std::path::Path;

    /// Every file of `corpus/<target>/` (the kept corpus, crash reproducers included) through its
    /// target: a regression of a fixed crash fails here, on stable.
    #[test]
    fn every_corpus_file_replays_without_a_panic() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut replayed = 0;
        for (name, target) in super::TARGETS {
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
            let mut count = 0;
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} panics", path.display());
                count += 1;
            }
            assert!(count > 0, "corpus {} is empty", dir.display());
            replayed += count;
        }
        eprintln!("replayed {replayed} corpus files");
    }
}
