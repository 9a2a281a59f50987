//! ONNX Runtime, loaded at run time from a shared library (`ort`'s `load-dynamic`): the node
//! builds and serves video on machines without it, and says where it looked when it is missing.

use crate::error::{LookedAt, Result, UnderstandError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The library file setup installs (from the PyPI wheel `onnxruntime==1.31.1`).
pub const LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";
/// Where setup installs it, relative to the repository root.
pub const LIBRARY_DIR: &str = ".cache/onnxruntime";

/// Which hardware runs the models. GPU providers fall back to the CPU, with a warning, when
/// the library or the machine cannot run them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ExecutionProvider {
    #[default]
    Cpu,
    Cuda {
        #[serde(default)]
        device_id: i32,
    },
    /// TensorRT, with CUDA for the operators TensorRT does not take.
    Tensorrt {
        #[serde(default)]
        device_id: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeOptions {
    /// The ONNX Runtime shared library; when unset, `ORT_DYLIB_PATH`, then the default places.
    pub library: Option<PathBuf>,
    pub execution_provider: ExecutionProvider,
    /// Threads inside one operator. One, with spinning off, leaves the cores to the frame
    /// path: on a busy 2-core machine it beats two (DESIGN.md).
    pub intra_threads: usize,
    /// Busy-wait between operators for lower latency, at the cost of a whole core.
    pub spinning: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            library: None,
            execution_provider: ExecutionProvider::Cpu,
            intra_threads: 1,
            spinning: false,
        }
    }
}

/// Loaded ONNX Runtime plus the options every model session is built with.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub(crate) environment: ort::environment::Environment,
    pub(crate) options: RuntimeOptions,
    library: PathBuf,
}

/// `ort` loads one library per process; remember which (and the environment built on it), so
/// a second, different library is refused instead of silently ignored.
static LOADED: Mutex<Option<(PathBuf, ort::environment::Environment)>> = Mutex::new(None);

impl Runtime {
    /// Finds and loads the ONNX Runtime library (see [`library_candidates`]).
    pub fn load(options: &RuntimeOptions) -> Result<Self> {
        let env_var = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty());
        let ort_dir = std::env::var_os("EDGE_NODE_ORT_DIR").filter(|v| !v.is_empty());
        let candidates = library_candidates(
            options.library.as_deref(),
            env_var.as_deref().map(Path::new),
            ort_dir.as_deref().map(Path::new),
            std::env::current_exe().ok().as_deref(),
        );
        let Some(found) = candidates.iter().find(|c| c.path.is_file()) else {
            return Err(UnderstandError::LibraryNotFound { looked: candidates });
        };
        // One spelling per file, so that two paths to the same library do not conflict.
        let library = std::fs::canonicalize(&found.path).unwrap_or(found.path.clone());
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        let environment = match loaded.as_ref() {
            Some((previous, _)) if *previous != library => {
                return Err(UnderstandError::LibraryConflict {
                    loaded: previous.clone(),
                    wanted: library,
                })
            }
            Some((_, environment)) => environment.clone(),
            None => {
                let load_error = |reason: String| UnderstandError::LibraryLoad {
                    path: library.clone(),
                    origin: found.origin,
                    reason,
                };
                looks_like_a_shared_library(&library).map_err(load_error)?;
                let environment = ort::init_from(&library)
                    .map_err(|e| load_error(e.to_string()))?
                    .with_name("edge-node")
                    .with_logger(Arc::new(forward_log))
                    .build()
                    .map_err(|e| load_error(e.to_string()))?;
                tracing::info!(library = %library.display(), origin = found.origin, "ONNX Runtime loaded");
                *loaded = Some((library.clone(), environment.clone()));
                environment
            }
        };
        Ok(Self {
            environment,
            options: options.clone(),
            library,
        })
    }

    /// The library file in use.
    pub fn library(&self) -> &Path {
        &self.library
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }
}

/// A readable ELF file, checked before `dlopen`, whose own error on a corrupt file is only
/// "dlopen failed".
fn looks_like_a_shared_library(path: &Path) -> std::result::Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if cfg!(target_os = "linux") && magic != *b"\x7fELF" {
        return Err("not an ELF shared library (corrupt, or the wrong file)".into());
    }
    Ok(())
}

/// ONNX Runtime's own log lines, through `tracing` like the rest of the node.
fn forward_log(
    level: ort::logging::LogLevel,
    category: &str,
    _id: &str,
    location: &str,
    message: &str,
) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Fatal | LogLevel::Error => {
            tracing::error!(target: "onnxruntime", category, location, "{message}")
        }
        LogLevel::Warning => tracing::warn!(target: "onnxruntime", category, location, "{message}"),
        LogLevel::Info | LogLevel::Verbose => {
            tracing::debug!(target: "onnxruntime", category, location, "{message}")
        }
    }
}

/// Where the library is looked for, in order. An explicit choice (config, then
/// `ORT_DYLIB_PATH`) is the only candidate: silently using another library would hide the
/// operator's mistake. Otherwise: `EDGE_NODE_ORT_DIR`, then `.cache/onnxruntime/` next to the
/// executable or in any of its ancestors (a `target/release/edge-node` in a checkout finds
/// the checkout's), then this source tree's (tests and `cargo run`).
pub fn library_candidates(
    configured: Option<&Path>,
    env_path: Option<&Path>,
    ort_dir: Option<&Path>,
    exe: Option<&Path>,
) -> Vec<LookedAt> {
    if let Some(path) = configured {
        return vec![LookedAt {
            path: path.to_path_buf(),
            origin: "config",
        }];
    }
    if let Some(path) = env_path {
        return vec![LookedAt {
            path: path.to_path_buf(),
            origin: "ORT_DYLIB_PATH",
        }];
    }
    let mut out = Vec::new();
    if let Some(dir) = ort_dir {
        out.push(LookedAt {
            path: dir.join(LIBRARY_FILE),
            origin: "EDGE_NODE_ORT_DIR",
        });
    }
    if let Some(exe_dir) = exe.and_then(Path::parent) {
        out.push(LookedAt {
            path: exe_dir.join(LIBRARY_FILE),
            origin: "next to the executable",
        });
        for dir in exe_dir.ancestors() {
            out.push(LookedAt {
                path: dir.join(LIBRARY_DIR).join(LIBRARY_FILE),
                origin: "beside the executable",
            });
        }
    }
    let repo = crate::repo_root();
    let in_repo = repo.join(LIBRARY_DIR).join(LIBRARY_FILE);
    if !out.iter().any(|c| c.path == in_repo) {
        out.push(LookedAt {
            path: in_repo,
            origin: "source tree",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_are_the_only_candidate() {
        let c = library_candidates(
            Some(Path::new("/opt/ort.so")),
            Some(Path::new("/env/ort.so")),
            None,
            None,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "/opt/ort.so (config)");
        let c = library_candidates(None, Some(Path::new("/env/ort.so")), None, None);
        assert_eq!(c[0].to_string(), "/env/ort.so (ORT_DYLIB_PATH)");
    }

    #[test]
    fn defaults_walk_up_from_the_executable() {
        let c = library_candidates(
            None,
            None,
            Some(Path::new("/ort")),
            Some(Path::new("/srv/edge/target/release/edge-node")),
        );
        let paths: Vec<String> = c.iter().map(|c| c.path.display().to_string()).collect();
        assert_eq!(paths[0], "/ort/libonnxruntime.so.1.31.1");
        assert_eq!(
            paths[1],
            "/srv/edge/target/release/libonnxruntime.so.1.31.1"
        );
        assert!(paths.contains(&"/srv/edge/.cache/onnxruntime/libonnxruntime.so.1.31.1".into()));
        assert!(paths
            .last()
            .unwrap()
            .ends_with(".cache/onnxruntime/libonnxruntime.so.1.31.1"));
    }

    #[test]
    fn runtime_options_parse_from_config() {
        let o: RuntimeOptions = toml::from_str(
            "library = \"/x/libonnxruntime.so\"\nexecution_provider = { kind = \"cuda\", device_id = 1 }",
        )
        .unwrap();
        assert_eq!(
            o.execution_provider,
            ExecutionProvider::Cuda { device_id: 1 }
        );
        assert_eq!(o.intra_threads, 1);
        assert!(!o.spinning);
        assert!(toml::from_str::<RuntimeOptions>("threads = 2").is_err());
    }
}
