//! Where the viewer page's files are, and which of them a request may name.
//!
//! The page is built by `scripts/setup-web.sh` (npm + esbuild) into `web/dist`; the node finds it
//! at run time so a plain `cargo build` needs no npm. Looked up once, at start, in order:
//! beside the executable (`web/` next to it, or `../share/edge-node/web` as installed under a
//! prefix such as `/usr/local`), the directory named by [`WEB_DIR_ENV`], then this repository's
//! `web/dist` (development). The first that holds `index.html` wins.

use std::path::{Path, PathBuf};

/// Environment variable naming the viewer page's directory (one holding `index.html`).
pub const WEB_DIR_ENV: &str = "EDGE_NODE_WEB_DIR";

/// Larger files are not served: the page is a few hundred KB, its source map a few MB.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A path of at most this many segments below the root is considered.
const MAX_SEGMENTS: usize = 4;
/// A segment longer than this is refused (file names here are short).
const MAX_SEGMENT_BYTES: usize = 64;

/// The located page directory, or every place that was tried.
#[derive(Clone, Debug)]
pub enum WebRoot {
    Found(PathBuf),
    Missing { tried: Vec<PathBuf> },
}

impl WebRoot {
    /// Looks in the places the module documentation lists.
    pub fn locate() -> Self {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let beside_exe = exe_dir
            .iter()
            .flat_map(|dir| [dir.join("web"), dir.join("../share/edge-node/web")]);
        let from_env = std::env::var_os(WEB_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let development = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
        Self::first_of(beside_exe.chain(from_env).chain([development]))
    }

    /// The first candidate holding an `index.html`.
    pub fn first_of(candidates: impl IntoIterator<Item = PathBuf>) -> Self {
        let mut tried = Vec::new();
        for candidate in candidates {
            if candidate.join("index.html").is_file() {
                // Canonical, so the containment check in `resolve` compares like with like.
                match candidate.canonicalize() {
                    Ok(root) => return Self::Found(root),
                    Err(_) => tried.push(candidate),
                }
            } else {
                tried.push(candidate);
            }
        }
        Self::Missing { tried }
    }

    /// The file a request path names, if it is a plain file inside the root. `/` is
    /// `index.html`. Hidden names, `..`, odd characters, deep paths and symlinks leading out of
    /// the root are refused.
    pub fn resolve(&self, request_path: &str) -> Option<PathBuf> {
        let Self::Found(root) = self else {
            return None;
        };
        let relative = safe_relative_path(request_path)?;
        let path = root.join(relative).canonicalize().ok()?;
        (path.starts_with(root) && path.is_file()).then_some(path)
    }
}

/// `/` → `index.html`; `/a/b.js` → `a/b.js`; anything that is not a short plain name → None.
pub fn safe_relative_path(request_path: &str) -> Option<PathBuf> {
    let trimmed = request_path.strip_prefix('/')?;
    if trimmed.is_empty() {
        return Some(PathBuf::from("index.html"));
    }
    let mut relative = PathBuf::new();
    for (index, segment) in trimmed.split('/').enumerate() {
        let plain = !segment.is_empty()
            && segment.len() <= MAX_SEGMENT_BYTES
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain || index >= MAX_SEGMENTS {
            return None;
        }
        relative.push(segment);
    }
    Some(relative)
}

/// The `Content-Type` for a file name; unknown kinds are bytes the browser must not sniff.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("map" | "json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_inside_the_root_are_accepted() {
        assert_eq!(safe_relative_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(
            safe_relative_path("/viewer.js"),
            Some(PathBuf::from("viewer.js"))
        );
        assert_eq!(
            safe_relative_path("/img/card-1.png"),
            Some(PathBuf::from("img/card-1.png"))
        );
        for bad in [
            "",
            "viewer.js",
            "/../etc/passwd",
            "/a/../../x",
            "/..",
            "/.git/config",
            "/a//b",
            "/a/",
            "/%2e%2e/x",
            "/a\\b",
            "/a b",
            "/a/b/c/d/e",
            "/ü.js",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad:?}");
        }
        let long = format!("/{}", "a".repeat(65));
        assert_eq!(safe_relative_path(&long), None);
    }

    #[test]
    fn the_first_directory_with_an_index_wins_and_symlinks_cannot_leave_it() {
        let base = std::env::temp_dir().join(format!("edge-web-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let empty = base.join("empty");
        let site = base.join("site");
        let outside = base.join("outside.txt");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(site.join("sub")).unwrap();
        std::fs::write(site.join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(site.join("sub/a.js"), "1").unwrap();
        std::fs::write(&outside, "secret").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, site.join("leak.txt")).unwrap();

        let root = WebRoot::first_of([empty.clone(), base.join("absent"), site.clone()]);
        let WebRoot::Found(found) = &root else {
            panic!("site not found: {root:?}");
        };
        assert_eq!(found, &site.canonicalize().unwrap());
        assert_eq!(
            root.resolve("/"),
            Some(site.join("index.html").canonicalize().unwrap())
        );
        assert!(root.resolve("/sub/a.js").is_some());
        assert_eq!(root.resolve("/sub"), None, "directories are not files");
        assert_eq!(root.resolve("/missing.js"), None);
        #[cfg(unix)]
        assert_eq!(root.resolve("/leak.txt"), None);

        let WebRoot::Missing { tried } = WebRoot::first_of([empty.clone()]) else {
            panic!("an empty directory is not a page");
        };
        assert_eq!(tried, vec![empty]);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn content_types_name_what_the_page_uses() {
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("viewer.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("viewer.js.map")), "application/json");
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }
}
