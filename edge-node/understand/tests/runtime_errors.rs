//! A missing or corrupt ONNX Runtime library is a clear error naming the file, never a panic.
//! Its own test binary: `ort` keeps the first library a process loads, so these run before any
//! real one could be.

use edge_understand::{Runtime, RuntimeOptions, UnderstandError};
use std::path::PathBuf;

fn options(library: PathBuf) -> RuntimeOptions {
    RuntimeOptions {
        library: Some(library),
        ..RuntimeOptions::default()
    }
}

#[test]
fn missing_and_corrupt_libraries_name_the_file() {
    let missing = PathBuf::from("/nonexistent/onnxruntime/libonnxruntime.so.1.31.1");
    let err = Runtime::load(&options(missing)).unwrap_err();
    assert!(
        matches!(err, UnderstandError::LibraryNotFound { .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(
            "ONNX Runtime library not found; looked at: /nonexistent/onnxruntime/libonnxruntime.so.1.31.1 (config)"
        ),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("edge-understand-ort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("libonnxruntime.so.1.31.1");
    std::fs::write(&corrupt, b"not an ELF shared object").unwrap();
    let err = Runtime::load(&options(corrupt.clone())).unwrap_err();
    assert!(matches!(err, UnderstandError::LibraryLoad { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "ONNX Runtime library {} (config) could not be loaded: not an ELF shared library",
            corrupt.display()
        )),
        "{err}"
    );

    // A failed load leaves the process free to load the real library afterwards.
    let real = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.cache/onnxruntime/libonnxruntime.so.1.31.1");
    let rt = Runtime::load(&options(real.clone()))
        .unwrap_or_else(|e| panic!("{e}\n(run `make setup` to install ONNX Runtime)"));
    // ...and refuses to switch libraries once one is loaded.
    let err = Runtime::load(&options(corrupt)).unwrap_err();
    assert!(
        matches!(err, UnderstandError::LibraryConflict { .. }),
        "{err}"
    );
    assert_eq!(rt.library(), std::fs::canonicalize(&real).unwrap());
    // The same file by another spelling is the same library.
    let respelled = real
        .parent()
        .unwrap()
        .join("../onnxruntime/libonnxruntime.so.1.31.1");
    assert!(Runtime::load(&options(respelled)).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
