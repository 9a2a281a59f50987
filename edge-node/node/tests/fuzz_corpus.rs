//! Every kept input of the `node_config` fuzz target (fuzz/corpus/node_config, crash
//! reproducers included) through the target's body, on stable: a regression of a fixed crash
//! fails here without a nightly toolchain or a sanitizer build of edge-node.

use std::path::Path;

#[test]
fn node_config_corpus_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/node_config");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| edge_node::fuzzing::node_config(&data));
        assert!(outcome.is_ok(), "{} panics", path.display());
        replayed += 1;
    }
    assert!(replayed >= 2, "corpus {} nearly empty", dir.display());
    eprintln!("replayed {replayed} node_config inputs");
}
