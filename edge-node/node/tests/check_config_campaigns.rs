//! `edge-node check-config` on campaign files, through the real binary.

mod common;

use common::*;
use std::process::Output;

fn check(args: &[&str]) -> Output {
    node_command()
        .arg("check-config")
        .args(args)
        .output()
        .expect("run edge-node")
}

#[test]
fn the_shipped_campaign_files_pass() {
    let root = repo_root();
    for file in [
        "edge-node/campaign/default-campaigns.toml",
        "edge-node/campaign/examples/production.yaml",
    ] {
        let path = root.join(file);
        let out = check(&[path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok (campaigns: 2 zones"), "{stdout}");
    }
}

#[test]
fn every_problem_is_printed_with_its_line_and_column() {
    let dir =
        std::env::temp_dir().join(format!("edge-node-check-campaigns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("campaigns.toml");
    std::fs::write(
        &file,
        r#"[settings]
default_zone = "lobby"

[[zones]]
id = "mall"
[zones.geofence]
type = "Polygon"
coordinates = [[[120.16, 30.27], [120.17, 30.27], [120.17, 30.28]]]

[[overlays]]
id = "coupon"
kind = "coupon"
template = "20% off"

[[campaigns]]
id = "sale"
zones = ["atrium"]
overlays = ["coupon"]
"#,
    )
    .unwrap();
    let out = check(&[file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{f}:2:16: settings.default_zone: default zone \"lobby\" is not one of the [[zones]]"),
            format!("{f}:8:16: zones[0].geofence.coordinates[0]: a ring needs at least 4 positions (3 corners and the first again), got 3"),
            format!("{f}:13:12: overlays[0].template: a coupon template must contain {{name}} (the viewer's name)"),
            format!("{f}:17:10: campaigns[0].zones[0]: unknown zone \"atrium\""),
        ],
        "{stdout}"
    );
    assert!(
        stderr.contains("4 problem(s)") && !stderr.contains("panicked"),
        "{stderr}"
    );

    // A file without [[zones]] is a node config unless --campaigns says otherwise.
    let plain = dir.join("overlays-only.toml");
    std::fs::write(&plain, "[settings]\nallow_zone_hints = true\n").unwrap();
    let out = check(&[plain.to_str().unwrap()]);
    assert!(!out.status.success(), "not a node config either");
    let out = check(&["--campaigns", plain.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("settings.default_zone"),
        "checked as campaigns: {stdout}"
    );
}
