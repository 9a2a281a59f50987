//! Every WGSL file in `shaders/` parses and validates with naga, without a GPU. A new shader
//! file is picked up automatically.

use std::path::PathBuf;

fn shader_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shaders")
}

#[test]
fn every_wgsl_file_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(shader_dir())
        .expect("shaders/ exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wgsl"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in ["blend_i420.wgsl", "scale_i420.wgsl"] {
        assert!(
            names.iter().any(|n| n == required),
            "{required} missing from {names:?}"
        );
    }

    let mut failures = Vec::new();
    for path in &files {
        let source = std::fs::read_to_string(path).expect("shader is UTF-8");
        let module = match naga::front::wgsl::parse_str(&source) {
            Ok(module) => module,
            Err(e) => {
                failures.push(e.emit_to_string_with_path(&source, &path.to_string_lossy()));
                continue;
            }
        };
        let mut validator = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        );
        if let Err(e) = validator.validate(&module) {
            failures.push(e.emit_to_string_with_path(&source, &path.to_string_lossy()));
            continue;
        }
        assert!(
            module
                .entry_points
                .iter()
                .all(|ep| ep.stage == naga::ShaderStage::Compute),
            "{}: the compositor only runs compute shaders",
            path.display()
        );
    }
    assert!(
        failures.is_empty(),
        "shader errors:\n{}",
        failures.join("\n")
    );
}

/// The entry points the compositor builds pipelines from exist under these names.
#[test]
fn entry_points_the_compositor_uses_exist() {
    for (file, entry) in [
        ("scale_i420.wgsl", "scale_luma"),
        ("scale_i420.wgsl", "scale_chroma"),
        ("blend_i420.wgsl", "blend_luma"),
        ("blend_i420.wgsl", "blend_chroma"),
    ] {
        let source = std::fs::read_to_string(shader_dir().join(file)).unwrap();
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        assert!(
            module.entry_points.iter().any(|ep| ep.name == entry),
            "{file} lacks entry point {entry}"
        );
    }
}
