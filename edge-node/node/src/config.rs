//! The node's configuration: one TOML or YAML file, defaults for every key, command-line
//! overrides on top, and validation that reports every problem with its place in the file.

use edge_campaign::{read_document, DocumentProblem, Format, OverlaySpec};
pub use edge_control::auth::AuthConfig;
pub use edge_control::mec::MecConfig;
use edge_core::placement::Anchor;
use edge_deliver::{DeliverError, RelayTrust, UplinkConfig};
use edge_engine::pipeline::EngineConfig;
use edge_engine::render_groups::EncodeSettings;
pub use edge_engine::understanding::UnderstandingConfig;
use edge_media::IngestConfig;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default: the built-in test show with the sample overlays.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../default-config.toml");

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub upstream: UpstreamConfig,
    pub server: ServerConfig,
    pub output: OutputConfig,
    pub encode: EncodeConfig,
    pub auth: AuthConfig,
    pub admin: AdminConfig,
    pub campaigns: CampaignsConfig,
    pub budget: BudgetConfig,
    pub mec: MecConfig,
    pub understanding: UnderstandingConfig,
    /// Site overlays drawn for every viewer on top of the campaigns' (an operator's badge).
    pub overlays: Vec<OverlayConfig>,
}

/// Where the campaigns (zones, ads, cards, coupons, schedules) come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignsConfig {
    /// A campaigns TOML/YAML file (relative to this config); none = the embedded default.
    pub file: Option<PathBuf>,
    /// How often the file is checked for changes (hot reload); 0 turns watching off.
    pub watch_interval_ms: u64,
}

/// The frame budget that admission keeps the node within. Admission's cost model starts from
/// costs measured on this machine at start-up (a few frames of the default rendition composed
/// and encoded before the node serves), then follows what the running node measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Node latency p99 the node must stay within (decoded frame in → encoded frame sent).
    pub node_latency_p99_ms: f64,
    /// How long an unwatched render group is kept (a viewer coming back finds it warm).
    pub group_grace_ms: u64,
    /// CPU cores the model assumes; 0 = what the machine has.
    pub cores: u32,
    /// Enforce admission (degrade or refuse over budget). `false` admits every viewer as asked,
    /// for measuring the node's real cost past the model (`edge-node bench --capacity`).
    pub admission: bool,
    /// Share of the budget admission keeps free (0 to below 1): a request is admitted while
    /// the expected p99 stays within `node_latency_p99_ms * (1 - admission_headroom)`, since a
    /// p99 measured over a second or two wanders by a few milliseconds.
    pub admission_headroom: f64,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        Self {
            file: None,
            watch_interval_ms: 1000,
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            node_latency_p99_ms: 20.0,
            group_grace_ms: 5000,
            cores: 0,
            admission: true,
            admission_headroom: edge_core::admission::DEFAULT_HEADROOM,
        }
    }
}

/// The operator API (`/api/v1/...` on the admin port). Probes and `/metrics` never need it.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token the operator API requires (prefer `EDGE_NODE_ADMIN_TOKEN`). Without one the
    /// API is open, which is only sensible on loopback.
    pub token: Option<String>,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the credential itself.
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

/// A bearer token shorter than this is too easy to guess.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub uri: String,
    pub stall_timeout_ms: u64,
    pub reconnect_initial_ms: u64,
    pub reconnect_max_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// On SIGTERM, how long connected viewers keep being served before sessions are closed.
    pub drain_grace_ms: u64,
    /// A MoQ relay (the fan-out tier beyond one node) to publish every rendering to, as
    /// `https://HOST:PORT/PREFIX`; renderings appear there as `PREFIX/<rendering>/live`.
    pub publish_to: Option<String>,
    /// Pin the relay's certificate by its SHA-256 (hex) ...
    pub publish_to_cert_sha256: Option<String>,
    /// ... or verify it against this CA (PEM). With neither, the node fetches and pins the
    /// relay's `/certificate.sha256` on each connect (trust on first use: development only).
    pub publish_to_ca: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeConfig {
    pub encoder: String,
    pub bitrate_kbps: u32,
    pub gop_ms: u32,
    /// The frame-path and encoder threads at the lowest real-time priority, so that a frame's
    /// encodes go before the viewers' sends (needs CAP_SYS_NICE; without it the node says so
    /// and keeps the normal scheduler). Off by default: node latency drops, but under a heavy
    /// fan-out the sends then wait for the encodes and the viewers' latency grows.
    pub realtime_priority: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverlayConfig {
    pub name: String,
    /// A PNG path (relative to the config file) or `builtin:NAME` for the shipped artwork.
    pub image: String,
    #[serde(default)]
    pub anchor: Anchor,
    #[serde(default)]
    pub margin: [i32; 2],
    #[serde(default = "full_opacity")]
    pub opacity: f32,
}

fn full_opacity() -> f32 {
    1.0
}

impl Default for NodeConfig {
    /// Plain defaults for keys a file leaves out (no overlays). See [`NodeConfig::embedded`]
    /// for what the node serves with no config file at all.
    fn default() -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            server: ServerConfig::default(),
            output: OutputConfig::default(),
            encode: EncodeConfig::default(),
            auth: AuthConfig::default(),
            admin: AdminConfig::default(),
            campaigns: CampaignsConfig::default(),
            budget: BudgetConfig::default(),
            mec: MecConfig::default(),
            understanding: UnderstandingConfig::default(),
            overlays: Vec::new(),
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            uri: "testshow://?width=1280&height=720&fps=30".into(),
            stall_timeout_ms: 2000,
            reconnect_initial_ms: 250,
            reconnect_max_ms: 4000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "[::]:4443".into(),
            tls_cert: None,
            tls_key: None,
            drain_grace_ms: 20_000,
            publish_to: None,
            publish_to_cert_sha256: None,
            publish_to_ca: None,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            width: 0,
            height: 0,
            fps: 30,
        }
    }
}

impl Default for EncodeConfig {
    fn default() -> Self {
        Self {
            encoder: "auto".into(),
            bitrate_kbps: 2500,
            gop_ms: 1000,
            realtime_priority: false,
        }
    }
}

/// One problem in a config, with where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigProblem {
    /// `file:line:column` for syntax errors, a key path (`overlays[1].opacity`) for values.
    pub place: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid config ({n} problem{}): ",
            if n == 1 { "" } else { "s" }
        )?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl NodeConfig {
    /// The embedded default: the built-in test show with the sample overlays.
    pub fn embedded() -> Self {
        // The embedded file is part of the binary and covered by a unit test.
        toml::from_str(DEFAULT_CONFIG_TOML).expect("embedded default config parses")
    }

    /// Reads and validates a config file (TOML, or YAML for `.yaml`/`.yml`).
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let place = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigProblem {
                place: place.clone(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        let mut config = if is_yaml {
            Self::parse_yaml(&text, &place)?
        } else {
            Self::parse_toml(&text, &place)?
        };
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        config.validate()?;
        Ok(config)
    }

    /// Applies `EDGE_NODE_<SECTION>_<KEY>` overrides (e.g. `EDGE_NODE_UPSTREAM_URI`,
    /// `EDGE_NODE_ENCODE_BITRATE_KBPS`) for every scalar key of the sections. A value is typed
    /// like the key it replaces; a bad one is reported with the variable's name.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigErrors> {
        let toml::Value::Table(mut root) = toml::Value::try_from(&*self).map_err(internal)? else {
            return Err(internal("config is not a table"));
        };
        let mut problems = Vec::new();
        let mut applied = false;
        for (name, raw) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_CONFIG.contains(&rest) {
                continue;
            }
            let target = root.iter_mut().find_map(|(section, table)| {
                let key = rest
                    .strip_prefix(&section.to_uppercase())?
                    .strip_prefix('_')?
                    .to_lowercase();
                let place = format!("{section}.{key}");
                let table = table.as_table_mut()?;
                // Optional keys are absent until set: they take strings (paths).
                if OPTIONAL_STRING_KEYS.contains(&place.as_str()) {
                    table
                        .entry(key.clone())
                        .or_insert_with(|| toml::Value::String(String::new()));
                }
                table.get_mut(&key).map(|v| (place, v))
            });
            let Some((place, slot)) = target else {
                problems.push(ConfigProblem {
                    place: name.clone(),
                    message: "no such config key".into(),
                });
                continue;
            };
            match typed_like(slot, &raw) {
                Some(value) => {
                    *slot = value;
                    applied = true;
                }
                None => problems.push(ConfigProblem {
                    place: name.clone(),
                    message: format!("{raw:?} is not a valid {} for {place}", slot.type_str()),
                }),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        if applied {
            *self = toml::Value::Table(root)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    ConfigErrors(vec![ConfigProblem {
                        place: "environment".into(),
                        message: e.message().to_string(),
                    }])
                })?;
        }
        Ok(())
    }

    /// Parses a TOML config; every problem the file has is reported, each with its line.
    pub fn parse_toml(text: &str, place: &str) -> Result<Self, ConfigErrors> {
        parse_all(
            text,
            |text| {
                toml::from_str(text).map_err(|e| {
                    let at = e.span().map(|s| line_col(text, s.start));
                    let problem = ConfigProblem {
                        place: at
                            .map_or_else(|| place.to_string(), |(l, c)| format!("{place}:{l}:{c}")),
                        message: e.message().to_string(),
                    };
                    (problem, at.map(|(line, _)| line))
                })
            },
            |text| text.parse::<toml::Table>().is_ok(),
        )
    }

    /// Parses a YAML config; every problem the file has is reported, each with its line.
    pub fn parse_yaml(text: &str, place: &str) -> Result<Self, ConfigErrors> {
        parse_all(
            text,
            |text| {
                read_document(text, Format::Yaml).map_err(|problems| {
                    // Syntax problems come all at once; `parse_all` asks again for each.
                    let first = problems.into_iter().next().unwrap_or(DocumentProblem {
                        line: None,
                        col: None,
                        path: String::new(),
                        message: "unreadable".into(),
                    });
                    let problem = ConfigProblem {
                        place: match (first.line, first.col) {
                            (Some(l), Some(c)) => format!("{place}:{l}:{c}"),
                            _ => place.to_string(),
                        },
                        message: first.message,
                    };
                    (problem, first.line)
                })
            },
            |text| read_document::<serde::de::IgnoredAny>(text, Format::Yaml).is_ok(),
        )
    }

    /// Overlay image paths in a file are relative to that file.
    fn resolve_paths(&mut self, base: &Path) {
        for o in &mut self.overlays {
            if !o.image.starts_with("builtin:") && Path::new(&o.image).is_relative() {
                o.image = base.join(&o.image).display().to_string();
            }
        }
        for p in [
            &mut self.server.tls_cert,
            &mut self.server.tls_key,
            &mut self.server.publish_to_ca,
            &mut self.campaigns.file,
            &mut self.understanding.models_dir,
            &mut self.understanding.ort_library,
            &mut self.auth.es256_public_key,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigProblem> {
        self.server.listen.parse().map_err(|e| ConfigProblem {
            place: "server.listen".into(),
            message: format!(
                "{:?} is not an address like [::]:4443 ({e})",
                self.server.listen
            ),
        })
    }

    /// Checks every value; returns all problems at once rather than the first.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut problems = Vec::new();
        let mut bad = |place: &str, message: String| {
            problems.push(ConfigProblem {
                place: place.into(),
                message,
            })
        };

        if !(self.budget.node_latency_p99_ms.is_finite() && self.budget.node_latency_p99_ms > 0.0) {
            bad(
                "budget.node_latency_p99_ms",
                format!(
                    "must be above 0 ms (got {})",
                    self.budget.node_latency_p99_ms
                ),
            );
        }
        if !(0.0..1.0).contains(&self.budget.admission_headroom) {
            bad(
                "budget.admission_headroom",
                format!(
                    "must be a share of the budget from 0 up to (not including) 1 (got {})",
                    self.budget.admission_headroom
                ),
            );
        }
        if !["cpu", "cuda", "tensorrt"].contains(&self.understanding.execution_provider.as_str()) {
            bad(
                "understanding.execution_provider",
                format!(
                    "{:?}: expected cpu, cuda or tensorrt",
                    self.understanding.execution_provider
                ),
            );
        }
        if let Some(base) = &self.mec.base_url {
            match url::Url::parse(base) {
                Ok(u) if u.scheme() == "http" => {}
                Ok(u) => bad(
                    "mec.base_url",
                    format!(
                        "{base:?}: only http:// is supported (got {}://)",
                        u.scheme()
                    ),
                ),
                Err(e) => bad("mec.base_url", format!("{base:?} is not a URL ({e})")),
            }
            if self.mec.timeout_ms == 0 {
                bad("mec.timeout_ms", "must be above 0".into());
            }
        }
        if let Some(listen) = &self.mec.notify_listen {
            match listen.parse::<SocketAddr>() {
                Err(_) => bad(
                    "mec.notify_listen",
                    format!("{listen:?} is not an address like 0.0.0.0:9091"),
                ),
                // The platform must be told an address it can reach.
                Ok(addr) if addr.ip().is_unspecified() && self.mec.notify_base_url.is_none() => {
                    bad(
                        "mec.notify_base_url",
                        format!("needed with notify_listen {listen:?}: the URL the MEC platform reaches this node at (e.g. http://edge-node.site-a:9091)"),
                    )
                }
                Ok(_) => {}
            }
        }
        if let Err(e) = url::Url::parse(&self.upstream.uri) {
            bad(
                "upstream.uri",
                format!("{:?} is not a URI ({e})", self.upstream.uri),
            );
        }
        if self.upstream.stall_timeout_ms < 100 {
            bad("upstream.stall_timeout_ms", "must be at least 100".into());
        }
        if self.upstream.reconnect_initial_ms == 0
            || self.upstream.reconnect_initial_ms > self.upstream.reconnect_max_ms
        {
            bad(
                "upstream.reconnect_initial_ms",
                "must be > 0 and <= reconnect_max_ms".into(),
            );
        }
        if let Err(p) = self.listen_addr() {
            bad(&p.place, p.message);
        }
        if self.server.drain_grace_ms > 600_000 {
            bad(
                "server.drain_grace_ms",
                format!(
                    "must be at most 600000 (10 min), got {}",
                    self.server.drain_grace_ms
                ),
            );
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            bad("server.tls_cert", "tls_cert and tls_key go together".into());
        }
        if let Err(p) = self.uplink() {
            bad(&p.place, p.message);
        }
        let (w, h) = (self.output.width, self.output.height);
        if (w == 0) != (h == 0) || w % 2 != 0 || h % 2 != 0 || w > 7680 || h > 4320 {
            bad("output", format!("width/height must both be 0 (source size) or even and <= 7680x4320, got {w}x{h}"));
        }
        if !(1..=120).contains(&self.output.fps) {
            bad(
                "output.fps",
                format!("must be 1..=120, got {}", self.output.fps),
            );
        }
        if !(100..=100_000).contains(&self.encode.bitrate_kbps) {
            bad(
                "encode.bitrate_kbps",
                format!("must be 100..=100000, got {}", self.encode.bitrate_kbps),
            );
        }
        // DESIGN: one MoQ group per GOP, and a GOP of 1-2 s.
        if !(1000..=2000).contains(&self.encode.gop_ms) {
            bad(
                "encode.gop_ms",
                format!(
                    "must be 1000..=2000 (a GOP of 1-2 s), got {}",
                    self.encode.gop_ms
                ),
            );
        }
        if let Err(e) = edge_control::auth::ViewerAuth::from_config(&self.auth) {
            bad("auth", format!("{e:#}"));
        }
        if let Some(token) = &self.admin.token {
            if token.len() < MIN_ADMIN_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
                bad(
                    "admin.token",
                    format!("must be at least {MIN_ADMIN_TOKEN_BYTES} printable ASCII characters without spaces"),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, o) in self.overlays.iter().enumerate() {
            let at = format!("overlays[{i}]");
            if o.name.is_empty() || !names.insert(o.name.as_str()) {
                bad(
                    &format!("{at}.name"),
                    format!("{:?} must be non-empty and unique", o.name),
                );
            }
            if !(0.0..=1.0).contains(&o.opacity) {
                bad(
                    &format!("{at}.opacity"),
                    format!("must be 0..=1, got {}", o.opacity),
                );
            }
            if let Some(name) = o.image.strip_prefix("builtin:") {
                if edge_engine::assets::builtin_overlay(name).is_none() {
                    bad(
                        &format!("{at}.image"),
                        format!(
                            "no built-in image {name:?}; built-ins: {}",
                            edge_engine::assets::BUILTIN_OVERLAYS.join(", ")
                        ),
                    );
                }
            } else {
                // The same decode `serve` does, so a file that passes here also serves.
                match std::fs::read(&o.image) {
                    Err(e) => bad(
                        &format!("{at}.image"),
                        format!("{} is not a readable file: {e}", o.image),
                    ),
                    Ok(bytes) => {
                        if let Err(e) = edge_compose::decode_png_rgba(&bytes) {
                            bad(
                                &format!("{at}.image"),
                                format!("{} is not a usable PNG: {e}", o.image),
                            );
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(problems))
        }
    }

    /// The relay uplink `[server] publish_to` asks for, if any.
    pub fn uplink(&self) -> Result<Option<UplinkConfig>, ConfigProblem> {
        let Some(url) = self.server.publish_to.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let problem = |place: &str, message: String| ConfigProblem {
            place: place.into(),
            message,
        };
        let url = url::Url::parse(url).map_err(|e| {
            problem(
                "server.publish_to",
                format!("{url:?} is not a URL like https://relay:4443/site-a ({e})"),
            )
        })?;
        let trust = match (
            &self.server.publish_to_cert_sha256,
            &self.server.publish_to_ca,
        ) {
            (Some(_), Some(_)) => {
                return Err(problem(
                    "server.publish_to_ca",
                    "set publish_to_cert_sha256 or publish_to_ca, not both".into(),
                ))
            }
            (Some(sha256), None) => RelayTrust::Sha256(sha256.clone()),
            (None, Some(ca)) => RelayTrust::CaFile(ca.clone()),
            (None, None) => RelayTrust::FetchSha256,
        };
        let mut config = UplinkConfig::new(url, trust);
        // Only shareable renderings leave the node: personal ones (a viewer's coupon, zoom or
        // tapped card) and viewer feeds stay here.
        config.renderings = Some(vec![edge_core::rendering::SHARED_PREFIX.to_string()]);
        config.validate().map_err(|e| {
            // A bad hash or CA file is reported at the key that named it.
            let place = match (&e, &config.trust) {
                (DeliverError::Certificate(_), RelayTrust::CaFile(_)) => "server.publish_to_ca",
                (DeliverError::Certificate(_), RelayTrust::Sha256(_)) => {
                    "server.publish_to_cert_sha256"
                }
                _ => "server.publish_to",
            };
            problem(place, e.to_string())
        })?;
        Ok(Some(config))
    }

    pub fn gop_frames(&self) -> u32 {
        (self.output.fps * self.encode.gop_ms).div_ceil(1000).max(1)
    }

    /// The engine's part of the configuration.
    pub fn engine(&self) -> anyhow::Result<EngineConfig> {
        Ok(EngineConfig {
            upstream: IngestConfig {
                stall_timeout: Duration::from_millis(self.upstream.stall_timeout_ms),
                reconnect_initial: Duration::from_millis(self.upstream.reconnect_initial_ms),
                reconnect_max: Duration::from_millis(self.upstream.reconnect_max_ms),
                ..IngestConfig::new(self.upstream.uri.clone())
            },
            encode: EncodeSettings {
                fps: self.output.fps,
                bitrate_kbps: self.encode.bitrate_kbps,
                gop_frames: self.gop_frames(),
                encoder: (self.encode.encoder != "auto").then(|| self.encode.encoder.clone()),
            },
            group_grace: Duration::from_millis(self.budget.group_grace_ms),
            understanding: self.understanding.clone(),
            site_overlays: self.site_overlays()?,
        })
    }

    /// The config's `[[overlays]]`: drawn for every viewer, whatever its zone.
    fn site_overlays(&self) -> anyhow::Result<Vec<OverlaySpec>> {
        self.overlays
            .iter()
            .map(|o| {
                edge_engine::overlay_spec::image_overlay(
                    &o.name, &o.image, o.opacity, o.anchor, o.margin,
                )
            })
            .collect()
    }
}

const ENV_PREFIX: &str = "EDGE_NODE_";
const OPTIONAL_STRING_KEYS: &[&str] = &[
    "server.tls_cert",
    "server.tls_key",
    "server.publish_to",
    "server.publish_to_cert_sha256",
    "server.publish_to_ca",
    "auth.hs256_secret",
    "auth.es256_public_key",
    "admin.token",
    "campaigns.file",
    "mec.base_url",
    "mec.notify_listen",
    "mec.notify_base_url",
    "understanding.models_dir",
    "understanding.ort_library",
];
/// `EDGE_NODE_*` variables that are flags or paths of the binary, not config keys.
const ENV_NOT_CONFIG: &[&str] = &["ADMIN", "ASSET_DIR", "MODELS_DIR", "ORT_DIR"];

fn internal(e: impl fmt::Display) -> ConfigErrors {
    ConfigErrors(vec![ConfigProblem {
        place: "config".into(),
        message: format!("internal: {e}"),
    }])
}

/// Parses `raw` as the same TOML type as `like`; optional paths (absent keys) are not
/// reachable here, so every slot has a type.
fn typed_like(like: &toml::Value, raw: &str) -> Option<toml::Value> {
    Some(match like {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().ok()?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().ok()?),
        toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().ok()?),
        _ => return None,
    })
}

/// The most problems one file reports: past this, fixing those first is the better advice.
const MAX_PROBLEMS: usize = 50;

/// Runs `parse` until it succeeds or stops finding new problems: a serde parser stops at the
/// first one, so the line at fault is blanked and the rest of the file parsed again. The search
/// ends at a problem without a line, or where blanking a line would break the file's syntax
/// (a value spread over several lines), so only real problems are reported.
fn parse_all(
    text: &str,
    parse: impl Fn(&str) -> Result<NodeConfig, (ConfigProblem, Option<usize>)>,
    syntax_ok: impl Fn(&str) -> bool,
) -> Result<NodeConfig, ConfigErrors> {
    let mut lines: Vec<&str> = text.lines().collect();
    let mut current = text.to_string();
    let mut problems = Vec::new();
    while problems.len() < MAX_PROBLEMS {
        let (problem, line) = match parse(&current) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => break,
            Err(found) => found,
        };
        problems.push(problem);
        let Some(index) = line
            .and_then(|l| l.checked_sub(1))
            .filter(|i| *i < lines.len())
        else {
            break;
        };
        if lines[index].trim().is_empty() {
            break; // the same line again: nothing more to learn
        }
        lines[index] = "";
        let next = lines.join("\n");
        if !syntax_ok(&next) {
            break;
        }
        current = next;
    }
    Err(ConfigErrors(problems))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| offset - i).unwrap_or(offset + 1);
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = NodeConfig::embedded();
        c.validate().unwrap();
        assert!(c.overlays.is_empty(), "the campaigns draw the overlays");
        assert!(c.understanding.enabled && c.campaigns.file.is_none());
        assert!(c.upstream.uri.starts_with("testshow://"));
        assert_eq!(c.gop_frames(), 30);
    }

    #[test]
    fn empty_file_takes_every_default() {
        let c = NodeConfig::parse_toml("", "x.toml").unwrap();
        assert_eq!(c.server.listen, "[::]:4443");
        assert_eq!(c.encode.bitrate_kbps, 2500);
    }

    #[test]
    fn syntax_errors_say_where() {
        let e = NodeConfig::parse_toml("[upstream]\nuri = \n", "node.toml").unwrap_err();
        assert!(e.0[0].place.starts_with("node.toml:2:"), "{:?}", e.0);
        let e = NodeConfig::parse_toml("[upstream]\nurl = \"x\"\n", "node.toml").unwrap_err();
        assert!(e.0[0].message.contains("unknown field `url`"), "{:?}", e.0);
        let e = NodeConfig::parse_yaml("encode:\n  bitrate_kbps: fast\n", "node.yaml").unwrap_err();
        assert!(e.0[0].place.starts_with("node.yaml:2:"), "{:?}", e.0);
    }

    #[test]
    fn every_wrongly_typed_value_is_reported_with_its_line() {
        let toml = "[server]\nlisten = 5\ndrain_grace_ms = \"x\"\n[encode]\nbitrate_kbps = \"fast\"\n[output]\nfps = \"thirty\"\n[budget]\ngroup_grace_ms = true\nno_such_key = 1\n";
        let e = NodeConfig::parse_toml(toml, "node.toml").unwrap_err();
        let lines: Vec<&str> =
            e.0.iter()
                .map(|p| p.place.split(':').nth(1).unwrap_or(""))
                .collect();
        assert_eq!(lines, ["2", "3", "5", "7", "9", "10"], "{:?}", e.0);
        assert!(
            e.0[5].message.contains("unknown field `no_such_key`"),
            "{:?}",
            e.0
        );

        let yaml = "encode:\n  bitrate_kbps: fast\noutput:\n  fps: thirty\n";
        let e = NodeConfig::parse_yaml(yaml, "node.yaml").unwrap_err();
        let places: Vec<&str> = e.0.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(places, ["node.yaml:2:17", "node.yaml:4:8"], "{:?}", e.0);
    }

    #[test]
    fn a_value_spread_over_lines_ends_the_search_without_inventing_problems() {
        let toml = "[server]\nlisten = [\n  1,\n  2,\n]\n[encode]\nbitrate_kbps = \"fast\"\n";
        let e = NodeConfig::parse_toml(toml, "node.toml").unwrap_err();
        assert!(!e.0.is_empty() && e.0.len() <= 2, "{:?}", e.0);
        assert!(
            e.0.iter()
                .all(|p| !p.message.contains("expected") || p.message.contains("invalid type")),
            "{:?}",
            e.0
        );
    }

    #[test]
    fn environment_overrides_typed_keys_and_reports_bad_ones() {
        let mut c = NodeConfig::embedded();
        let vars = [
            ("EDGE_NODE_UPSTREAM_URI", "rtmp://origin/live/show"),
            ("EDGE_NODE_ENCODE_BITRATE_KBPS", "4000"),
            ("EDGE_NODE_ADMIN", "0.0.0.0:9090"),
            ("EDGE_NODE_SERVER_TLS_CERT", "/etc/tls/crt.pem"),
            ("PATH", "/usr/bin"),
        ];
        c.apply_env(vars.map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
        assert_eq!(c.upstream.uri, "rtmp://origin/live/show");
        assert_eq!(c.encode.bitrate_kbps, 4000);
        assert_eq!(
            c.server.tls_cert.as_deref(),
            Some(Path::new("/etc/tls/crt.pem"))
        );
        assert_eq!(
            c.understanding.models,
            ["centerface"],
            "sections survive the round trip"
        );
        c.apply_env([(
            "EDGE_NODE_ADMIN_TOKEN".to_string(),
            "operator-token-0123456789".to_string(),
        )])
        .unwrap();
        assert_eq!(c.admin.token.as_deref(), Some("operator-token-0123456789"));
        assert!(
            !format!("{c:?}").contains("operator-token"),
            "Debug hides it"
        );
        c.admin.token = Some("short".into());
        let e = c.validate().unwrap_err();
        assert!(e.0.iter().any(|p| p.place == "admin.token"), "{e}");
        c.admin.token = None;

        let bad = [
            ("EDGE_NODE_ENCODE_BITRATE_KBPS", "fast"),
            ("EDGE_NODE_ENCODE_COLOUR", "red"),
        ];
        let e = c
            .apply_env(bad.map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap_err();
        let places: Vec<_> = e.0.iter().map(|p| p.place.as_str()).collect();
        assert_eq!(
            places,
            ["EDGE_NODE_ENCODE_BITRATE_KBPS", "EDGE_NODE_ENCODE_COLOUR"]
        );
        assert_eq!(
            c.encode.bitrate_kbps, 4000,
            "a rejected override changes nothing"
        );
    }

    #[test]
    fn every_bad_value_is_reported() {
        let text = r#"
[server]
listen = "nowhere"
[output]
width = 1281
height = 720
[encode]
gop_ms = 5000
[[overlays]]
name = "a"
image = "builtin:nope"
opacity = 2.0
"#;
        let c = NodeConfig::parse_toml(text, "x.toml").unwrap();
        let places: Vec<String> = c
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|p| p.place)
            .collect();
        assert_eq!(
            places,
            vec![
                "server.listen",
                "output",
                "encode.gop_ms",
                "overlays[0].opacity",
                "overlays[0].image"
            ]
        );
    }

    #[test]
    fn publish_to_builds_the_relay_uplink_and_reports_bad_settings() {
        let mut c = NodeConfig::default();
        assert!(c.uplink().unwrap().is_none(), "no relay unless asked");
        c.apply_env([(
            "EDGE_NODE_SERVER_PUBLISH_TO".to_string(),
            "https://relay.example:4443/mall-a/node-1".to_string(),
        )])
        .unwrap();
        let uplink = c.uplink().unwrap().expect("relay configured");
        assert_eq!(uplink.url.path(), "/mall-a/node-1");
        assert_eq!(uplink.trust, RelayTrust::FetchSha256);
        c.server.publish_to_cert_sha256 = Some("ab".repeat(32));
        assert_eq!(
            c.uplink().unwrap().unwrap().trust,
            RelayTrust::Sha256("ab".repeat(32))
        );

        c.server.publish_to_ca = Some("/nonexistent/ca.pem".into());
        let places = |c: &NodeConfig| -> Vec<String> {
            c.validate()
                .unwrap_err()
                .0
                .into_iter()
                .map(|p| p.place)
                .collect()
        };
        assert_eq!(places(&c), vec!["server.publish_to_ca"], "not both");
        c.server.publish_to_cert_sha256 = None;
        assert_eq!(
            places(&c),
            vec!["server.publish_to_ca"],
            "unreadable CA file"
        );
        c.server.publish_to_ca = None;
        c.server.publish_to_cert_sha256 = Some("abc".into());
        assert_eq!(
            places(&c),
            vec!["server.publish_to_cert_sha256"],
            "not a SHA-256"
        );
        c.server.publish_to_cert_sha256 = None;
        c.server.publish_to = Some("http://relay:4443/".into());
        assert_eq!(places(&c), vec!["server.publish_to"], "not WebTransport");
        c.server.publish_to = Some("not a url".into());
        assert_eq!(places(&c), vec!["server.publish_to"]);
    }
}
