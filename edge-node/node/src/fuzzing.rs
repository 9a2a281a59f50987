//! The node config as the fuzz target in `fuzz/` drives it, here so that edge-node's own tests
//! replay that target's corpus on stable without building edge-node a second time for the
//! fuzz workspace.

use crate::config::NodeConfig;

/// The most problems one rejected config reports (the parser's own bound), plus one per
/// environment variable at most.
const MAX_FILE_PROBLEMS: usize = 50;

/// One input: the first byte picks TOML (even) or YAML (odd); the rest is split at the first
/// NUL into the file and `NAME=value` lines of environment overrides, applied as `serve` applies
/// the process environment, then validated. Rejection is fine; a panic, an empty error list or
/// an unbounded one is a finding.
pub fn node_config(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (file, env) = text.split_once('\0').unwrap_or((&text, ""));
    let parsed = if mode % 2 == 0 {
        NodeConfig::parse_toml(file, "fuzz.toml")
    } else {
        NodeConfig::parse_yaml(file, "fuzz.yaml")
    };
    let mut config = match parsed {
        Ok(config) => config,
        Err(errors) => {
            let n = errors.0.len();
            assert!((1..=MAX_FILE_PROBLEMS).contains(&n), "{n} problems");
            return;
        }
    };
    let vars: Vec<(String, String)> = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let var_count = vars.len();
    match config.apply_env(vars) {
        Ok(()) => {
            if let Err(errors) = config.validate() {
                assert!(!errors.0.is_empty(), "a rejection says why");
            }
            let _ = config.listen_addr();
        }
        Err(errors) => {
            let n = errors.0.len();
            assert!(
                (1..=var_count.max(1)).contains(&n),
                "{n} problems for {var_count} variables"
            );
        }
    }
}
