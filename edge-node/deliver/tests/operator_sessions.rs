//! What an operator sees and can do to viewer sessions: list them (without credentials) and
//! disconnect one with a code and reason, leaving the others streaming.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_deliver::client::{self, ClientOptions};
use edge_deliver::{DeliveryServer, VideoTrackInfo};

const VIDEO: VideoTrackInfo = VideoTrackInfo {
    width: 320,
    height: 240,
    fps: 30.0,
};

fn options(server: &DeliveryServer) -> ClientOptions {
    ClientOptions {
        cert_sha256: Some(server.certificate_sha256_hex().to_string()),
        connect_timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_sessions_and_disconnect_one() {
    init_tracing();
    let units = access_units(&h264_clip(320, 240, 3, &[]));
    let server = loopback_server(Arc::new(QueryRouter::default())).await;
    let pacer = Pacer::start(
        server.publish_rendering("a", VIDEO).unwrap(),
        units,
        30.0,
        5,
    );
    let url =
        |query: &str| url::Url::parse(&format!("https://{}/{query}", server.local_addr())).unwrap();
    let mut kept = client::subscribe(&url("?rendering=a&zone=z1"), options(&server))
        .await
        .expect("first viewer");
    let kicked = client::subscribe(
        &url("?rendering=a&token=secret-credential"),
        options(&server),
    )
    .await
    .expect("second viewer");

    let sessions = server.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(sessions
        .iter()
        .all(|s| s.rendering == "a" && s.transport == edge_deliver::ViewerTransport::WebTransport));
    assert!(sessions.iter().all(|s| s.remote.ip().is_loopback()));
    assert_eq!(sessions[0].query, "rendering=a&zone=z1");
    assert_eq!(sessions[1].query, "rendering=a&token=REDACTED");
    assert!(sessions[0].id < sessions[1].id);

    assert!(!server.close_session(9_999, 4000, "nobody"));
    assert!(server.close_session(sessions[1].id, 4001, "removed by operator"));
    let close = tokio::time::timeout(Duration::from_secs(5), kicked.closed())
        .await
        .expect("the close reaches the viewer");
    assert_eq!(close, Some((4001, "removed by operator".to_string())));
    assert!(
        wait_until(Duration::from_secs(5), || server.sessions().len() == 1).await,
        "the closed session leaves the list"
    );
    assert_eq!(server.sessions()[0].id, sessions[0].id);
    assert_eq!(server.viewers("a"), 1);

    // The other viewer keeps streaming.
    let mut frames = 0;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while frames < 30 && kept.next_frame().await.is_some() {
            frames += 1;
        }
    })
    .await;
    assert_eq!(frames, 30);

    drop(kept);
    assert!(wait_until(Duration::from_secs(5), || server.sessions().is_empty()).await);
    drop(pacer.finish());
    server.shutdown(0, "test over").await;
}
