//! Shared fixtures for the delivery integration tests: real H.264 from ffmpeg, a paced
//! publisher thread like the encoder's, and small routers.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_core::{annexb, sei, EncodedFrame, FrameMeta};
use edge_deliver::{
    DeliveryServer, Refusal, RenderingPublisher, ServerConfig, SessionRouter, TlsSource,
    ViewerRequest,
};

pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "edge_deliver=info".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// A short H.264 Annex B clip from ffmpeg's test source, generated once per parameter set and
/// cached in the target directory. `extra` are additional x264 output options.
pub fn h264_clip(width: u32, height: u32, seconds: u32, extra: &[&str]) -> PathBuf {
    // Tests of one binary run on parallel threads of one process: one of them generates a
    // clip while the others wait for it instead of writing the same file.
    static GENERATING: Mutex<()> = Mutex::new(());
    let _one_writer = GENERATING.lock().unwrap_or_else(|p| p.into_inner());
    let tag = extra.join("_").replace(['-', ' ', ':', '='], "");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("clip_{width}x{height}_{seconds}s_{tag}.h264"));
    if path.exists() {
        return path;
    }
    // Other test binaries (other processes) may generate the same clip: each writes a name of
    // its own and renames it into place, which is atomic; the last rename wins with equal bytes.
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size={width}x{height}:rate=30"),
        // 4:2:0 as every real encoder here produces (testsrc alone makes x264 pick 4:4:4).
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-bf",
        "0",
        "-g",
        "30",
        "-tune",
        "zerolatency",
        "-t",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "-f".into(),
        "h264".into(),
        partial.to_string_lossy().into_owned(),
    ]);
    let status = Command::new("ffmpeg")
        .args(&args)
        .status()
        .expect("ffmpeg is installed");
    assert!(
        status.success(),
        "ffmpeg failed to generate {}",
        path.display()
    );
    std::fs::rename(&partial, &path)
        .unwrap_or_else(|e| panic!("rename {} into place: {e}", partial.display()));
    path
}

/// The clip's access units, in order, with their keyframe flags.
pub fn access_units(path: &PathBuf) -> Vec<(Vec<u8>, bool)> {
    let data = std::fs::read(path).expect("read clip");
    annexb::split_access_units(&data)
        .into_iter()
        .map(|au| {
            let keyframe = annexb::is_idr(&au);
            (au, keyframe)
        })
        .collect()
}

/// What the pacer actually published, for comparison with what arrived.
#[derive(Clone, Debug)]
pub struct Sent {
    pub sei_unix_us: u64,
    pub data: Bytes,
    pub keyframe: bool,
}

/// Writes access units at `fps` from a plain thread, as the encoder callback does: stamps the
/// frame clock SEI with the wall-clock time just before `write`, so `received - SEI` is the
/// send-to-receive latency. Loops the clip `loops` times.
pub struct Pacer {
    pub stop: Arc<AtomicBool>,
    pub sent: Arc<Mutex<Vec<Sent>>>,
    handle: Option<JoinHandle<RenderingPublisher>>,
}

impl Pacer {
    pub fn start(
        publisher: RenderingPublisher,
        units: Vec<(Vec<u8>, bool)>,
        fps: f64,
        loops: usize,
    ) -> Self {
        Self::start_with_clock_offset(publisher, units, fps, loops, 0)
    }

    /// Like [`Pacer::start`], with `sei_offset_us` added to every frame clock, so tests can tell
    /// renderings apart by their SEI time ranges.
    pub fn start_with_clock_offset(
        mut publisher: RenderingPublisher,
        units: Vec<(Vec<u8>, bool)>,
        fps: f64,
        loops: usize,
        sei_offset_us: u64,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (stop_flag, sent_log) = (stop.clone(), sent.clone());
        let handle = std::thread::spawn(move || {
            let frame_interval = Duration::from_secs_f64(1.0 / fps);
            let start = Instant::now();
            let mut seq = 0u64;
            'outer: for _ in 0..loops {
                for (au, keyframe) in &units {
                    if stop_flag.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    let due = start + frame_interval * seq as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let now_us = sei::unix_now_us() + sei_offset_us;
                    let data = Bytes::from(sei::stamp_access_unit(au, now_us));
                    let frame = EncodedFrame {
                        meta: FrameMeta {
                            seq,
                            pts_ns: seq * 1_000_000_000 / fps as u64,
                            received_unix_us: now_us,
                        },
                        keyframe: *keyframe,
                        data: data.clone(),
                        encoded_unix_us: now_us,
                    };
                    match publisher.write(&frame) {
                        Ok(()) => {}
                        // The test ended (or failed) and shut the server down under us.
                        Err(edge_deliver::DeliverError::ServerClosed) => break 'outer,
                        Err(e) => panic!("write frame: {e}"),
                    }
                    sent_log.lock().unwrap().push(Sent {
                        sei_unix_us: now_us,
                        data,
                        keyframe: *keyframe,
                    });
                    seq += 1;
                }
            }
            publisher
        });
        Self {
            stop,
            sent,
            handle: Some(handle),
        }
    }

    /// Stops (if still running) and returns the publisher for its stats.
    pub fn finish(mut self) -> RenderingPublisher {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("pacer thread")
    }

    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
}

/// Routes every viewer to one rendering.
pub struct FixedRouter(pub &'static str);

impl SessionRouter for FixedRouter {
    fn route(&self, _request: &ViewerRequest) -> Result<String, Refusal> {
        Ok(self.0.to_string())
    }
}

/// Routes by `?rendering=NAME` (only `a` and `b` exist), remembering closed sessions.
#[derive(Default)]
pub struct QueryRouter {
    pub closed: Mutex<Vec<u64>>,
    pub controls: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl SessionRouter for QueryRouter {
    fn route(&self, request: &ViewerRequest) -> Result<String, Refusal> {
        match request.query_value("rendering").as_deref() {
            Some(name @ ("a" | "b")) => Ok(name.to_string()),
            Some(other) => Err(Refusal::new(format!("no rendering named {other:?} here"))),
            None => Err(Refusal::new("missing ?rendering=")),
        }
    }

    fn control(&self, session_id: u64, message: &[u8]) -> Result<(), String> {
        self.controls
            .lock()
            .unwrap()
            .push((session_id, message.to_vec()));
        Ok(())
    }

    fn closed(&self, session_id: u64) {
        self.closed.lock().unwrap().push(session_id);
    }
}

pub async fn loopback_server(router: Arc<dyn SessionRouter>) -> DeliveryServer {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        tls: TlsSource::Generate,
        ..ServerConfig::default()
    };
    DeliveryServer::bind(config, router)
        .await
        .expect("bind delivery server")
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Accepts any server certificate: only for hostile-client tests that never get to TLS trust.
#[derive(Debug)]
pub struct AcceptAnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A bare quinn client offering `alpn`, trusting anything: the raw material of misbehaving
/// clients.
pub fn raw_quic_client(alpn: &str) -> (quinn::Endpoint, quinn::ClientConfig) {
    edge_deliver::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    (endpoint, config)
}

/// Decodes an H.264 Annex B file under ffmpeg's strictest error detection (`-xerror
/// -err_detect explode`, where plain ffmpeg conceals damage); `Err` holds what ffmpeg said.
pub fn decode_strictly(path: &std::path::Path) -> Result<(), String> {
    let decode = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-xerror",
            "-err_detect",
            "explode",
            "-i",
        ])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .map_err(|e| format!("running ffmpeg: {e}"))?;
    match decode.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&decode.stderr).into_owned()),
    }
}
