//! Upstream URIs: which kinds exist, and what each needs to start.

use crate::MediaError;
use std::path::PathBuf;
use url::Url;

/// Parameters of the built-in test show (`testshow://?width=&height=&fps=`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TestShow {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The astronaut photo composited over the moving background.
    pub face_png: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    TestShow(TestShow),
    /// A local file paced at real time so it behaves like a live upstream.
    File {
        uri: String,
        path: PathBuf,
        loop_at_eos: bool,
    },
    /// RTMP, RTSP, SRT or HLS: handed to uridecodebin3 as is.
    Network {
        uri: String,
        scheme: String,
    },
}

impl Source {
    pub(crate) fn is_live(&self) -> bool {
        !matches!(self, Source::File { .. })
    }

    /// The GStreamer elements this source needs beyond the shared decode tail.
    pub(crate) fn required_elements(&self) -> &'static [&'static str] {
        match self {
            Source::TestShow(_) => &[
                "videotestsrc",
                "gdkpixbufoverlay",
                "x264enc",
                "h264parse",
                "decodebin",
            ],
            Source::File { .. } => &["uridecodebin"],
            Source::Network { .. } => &["uridecodebin3"],
        }
    }

    /// The URI decoder for files and network upstreams.
    pub(crate) fn decodebin_factory(&self) -> &'static str {
        match self {
            Source::Network { .. } => "uridecodebin3",
            _ => "uridecodebin",
        }
    }
}

const TEST_SHOW_DEFAULT: (u32, u32, u32) = (1280, 720, 30);
pub(crate) const FACE_ASSET: &str = "astronaut.png";

/// Parses an upstream URI. Everything an operator can get wrong in the URI fails here, before
/// any pipeline exists: an unknown scheme, a missing file, a missing test-show asset.
pub(crate) fn parse(
    uri: &str,
    asset_dirs: &[PathBuf],
    loop_files: bool,
) -> Result<Source, MediaError> {
    let unsupported = |reason: String| MediaError::UnsupportedUri {
        uri: uri.to_owned(),
        reason,
    };
    let url = Url::parse(uri).map_err(|e| unsupported(format!("not a URI ({e})")))?;
    match url.scheme() {
        "testshow" => parse_test_show(uri, &url, asset_dirs),
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|_| unsupported("file URIs need an absolute local path".into()))?;
            if !path.is_file() {
                return Err(MediaError::FileNotFound { path });
            }
            let loop_at_eos = loop_files || query_flag(&url, "loop");
            // Our own query parameters mean nothing to GStreamer's file source.
            let mut clean = url.clone();
            clean.set_query(None);
            Ok(Source::File {
                uri: clean.to_string(),
                path,
                loop_at_eos,
            })
        }
        scheme @ ("rtmp" | "rtmps" | "rtsp" | "rtsps" | "srt" | "http" | "https") => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(unsupported("the URI names no host".into()));
            }
            Ok(Source::Network {
                uri: uri.to_owned(),
                scheme: scheme.to_owned(),
            })
        }
        other => Err(unsupported(format!(
            "scheme `{other}` is not one of rtmp, rtsp, srt, http(s) (HLS), file, testshow"
        ))),
    }
}

fn query_flag(url: &Url, key: &str) -> bool {
    url.query_pairs()
        .any(|(k, v)| k == key && matches!(v.as_ref(), "" | "1" | "true" | "yes"))
}

fn parse_test_show(uri: &str, url: &Url, asset_dirs: &[PathBuf]) -> Result<Source, MediaError> {
    let (mut width, mut height, mut fps) = TEST_SHOW_DEFAULT;
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "width" => &mut width,
            "height" => &mut height,
            "fps" => &mut fps,
            _ => continue,
        };
        *slot = value.parse().map_err(|_| MediaError::InvalidConfig {
            what: "test show URI",
            reason: format!("{key}={value} in {uri} is not a whole number"),
        })?;
    }
    let invalid = |reason: String| MediaError::InvalidConfig {
        what: "test show URI",
        reason,
    };
    if !(64..=7680).contains(&width) || !(64..=4320).contains(&height) {
        return Err(invalid(format!(
            "size {width}x{height} is outside 64x64..7680x4320"
        )));
    }
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(invalid(format!(
            "size {width}x{height} must be even (I420)"
        )));
    }
    if !(1..=120).contains(&fps) {
        return Err(invalid(format!("fps {fps} is outside 1..120")));
    }
    let looked: Vec<PathBuf> = asset_dirs.iter().map(|d| d.join(FACE_ASSET)).collect();
    let Some(face_png) = looked.iter().find(|p| p.is_file()).cloned() else {
        return Err(MediaError::MissingAsset { looked });
    };
    Ok(Source::TestShow(TestShow {
        width,
        height,
        fps,
        face_png,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/assets")
    }

    #[test]
    fn unknown_scheme_is_refused() {
        let err = parse("gopher://host/x", &[assets()], false).unwrap_err();
        assert!(err.to_string().contains("gopher"), "{err}");
        assert!(parse("no uri at all", &[assets()], false).is_err());
    }

    #[test]
    fn test_show_defaults_and_query() {
        let Source::TestShow(show) = parse("testshow://", &[assets()], false).unwrap() else {
            panic!("not a test show");
        };
        assert_eq!((show.width, show.height, show.fps), (1280, 720, 30));
        let Source::TestShow(show) = parse(
            "testshow://?width=640&height=360&fps=15",
            &[assets()],
            false,
        )
        .unwrap() else {
            panic!("not a test show");
        };
        assert_eq!((show.width, show.height, show.fps), (640, 360, 15));
        assert!(parse("testshow://?width=641", &[assets()], false).is_err());
        assert!(parse("testshow://?fps=abc", &[assets()], false).is_err());
    }

    #[test]
    fn missing_asset_names_the_path_and_the_fix() {
        let err = parse("testshow://", &["/nonexistent-assets".into()], false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-assets/astronaut.png") && msg.contains("make setup"));
    }

    #[test]
    fn file_query_sets_loop_and_is_stripped() {
        let dir = assets();
        let path = dir.join(FACE_ASSET).canonicalize().unwrap();
        let uri = format!("file://{}?loop=1", path.display());
        let Source::File {
            uri: clean,
            loop_at_eos,
            ..
        } = parse(&uri, &[dir], false).unwrap()
        else {
            panic!("not a file");
        };
        assert!(loop_at_eos);
        assert!(!clean.contains('?'));
    }

    #[test]
    fn network_uris_need_a_host() {
        assert!(parse("rtmp://origin.example/live/show", &[assets()], false).is_ok());
        assert!(parse("srt://10.0.0.1:9000?mode=caller", &[assets()], false).is_ok());
        assert!(parse("rtsp:///nohost", &[assets()], false).is_err());
    }
}
