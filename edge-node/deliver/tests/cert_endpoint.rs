//! `GET /certificate.sha256` over TCP on the QUIC port: the hash with CORS for browsers, and
//! nothing a stray or hostile TCP client sends takes it down.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("answered in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_hash_is_served_with_cors_and_junk_is_shrugged_off() {
    init_tracing();
    let server = loopback_server(Arc::new(FixedRouter("main"))).await;
    let addr = server.local_addr();
    let hash = server.certificate_sha256_hex().to_string();
    assert_eq!(hash.len(), 64);
    assert!(hash
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    // A connection that sends nothing holds a slot, not the listener.
    let mut idle = TcpStream::connect(addr).await.unwrap();

    let ok = exchange(
        addr,
        b"GET /certificate.sha256 HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("\r\nAccess-Control-Allow-Origin: *\r\n"),
        "{ok}"
    );
    assert_eq!(ok.split("\r\n\r\n").nth(1), Some(hash.as_str()));

    let preflight = exchange(
        addr,
        b"OPTIONS /certificate.sha256 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(preflight.starts_with("HTTP/1.1 204"), "{preflight}");
    assert!(preflight.contains("Access-Control-Allow-Origin: *"));

    // A WebSocket upgrade offering no moq subprotocol (the fallback's own are served: see
    // websocket_viewer), garbage, an oversized head, a half request.
    let websocket = exchange(
        addr,
        b"GET /?zone=a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert!(websocket.starts_with("HTTP/1.1 400"), "{websocket}");
    let garbage = exchange(
        addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    )
    .await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let oversized = exchange(addr, &vec![b'A'; 64 * 1024]).await;
    assert!(
        oversized.starts_with("HTTP/1.1 400") || oversized.is_empty(),
        "{oversized}"
    );
    {
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /certif").await.unwrap();
        // Dropped mid-request.
    }

    // Still serving, the idle connection is eventually closed by the server's timeout.
    let again = exchange(addr, b"GET /certificate.sha256?t=1 HTTP/1.0\r\n\r\n").await;
    assert!(again.ends_with(&hash), "{again}");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(8), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection closed by the server"
    );

    // And our client's own fetch agrees with the server's view of its certificate.
    let fetched = edge_deliver::client::fetch_certificate_hash(addr, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(fetched, hash);
    server.shutdown(0, "test over").await;
}

/// With the site's own certificate (`TlsSource::Files`), the same TCP port also answers over
/// HTTPS with it, so a phone's browser gets a secure context for the viewer page; plain HTTP
/// keeps working beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_site_certificate_the_page_port_also_speaks_https() {
    init_tracing();
    edge_deliver::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!(
        "edge-deliver-https-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let config = edge_deliver::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: edge_deliver::TlsSource::Files { cert_pem, key_pem },
        ..edge_deliver::ServerConfig::default()
    };
    let server = edge_deliver::DeliveryServer::bind(config, Arc::new(FixedRouter("main")))
        .await
        .expect("bind with the site's certificate");
    let hash = server.certificate_sha256_hex().to_string();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(server.local_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("HTTPS with the site's certificate");
    tls.write_all(b"GET /certificate.sha256 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(&hash), "{response}");

    let plain = exchange(
        server.local_addr(),
        b"GET /certificate.sha256 HTTP/1.1\r\n\r\n",
    )
    .await;
    assert!(plain.ends_with(&hash), "{plain}");
    server.shutdown(0, "test over").await;
    std::fs::remove_dir_all(&dir).ok();
}
