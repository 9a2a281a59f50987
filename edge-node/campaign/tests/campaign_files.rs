//! Whole campaign files: the embedded default, the production example, broken files and
//! PNG files next to a campaign file.

use edge_campaign::{
    Campaigns, Format, ImageSource, MecFix, OverlayContent, ZoneInputs, ZoneSource,
};
use std::path::{Path, PathBuf};

const MALL: (f64, f64) = (30.2745, 120.1633);
const SHANGHAI: (f64, f64) = (31.2304, 121.4737);
const WEST_LAKE: (f64, f64) = (30.2460, 120.1450);
const NOV_11_2026_CST: i64 = 1_794_326_400;

fn by_point((lat, lon): (f64, f64), c: &Campaigns) -> (String, ZoneSource) {
    let d = c.resolve_zone(&ZoneInputs {
        lat_lon: Some((lat, lon)),
        ..ZoneInputs::default()
    });
    (d.zone_id, d.source)
}

#[test]
fn embedded_default_has_the_mall_and_everyone_else() {
    let c = Campaigns::embedded();
    assert!(c.settings.allow_zone_hints);
    assert_eq!(c.settings.default_zone, "default");
    assert_eq!(c.settings.default_rendition.name, "720p");
    let ids: Vec<&str> = c.zones.iter().map(|z| z.id.as_str()).collect();
    assert_eq!(ids, ["yintai-mall", "default"]);

    let now = NOV_11_2026_CST;
    let mall: Vec<&str> = c
        .active_overlays("yintai-mall", now)
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    assert_eq!(
        mall,
        [
            "live-badge",
            "yintai-mall-ad",
            "yintai-product-card",
            "viewer-coupon"
        ]
    );
    let card = c.overlay("yintai-product-card").unwrap();
    let OverlayContent::Card(spec) = &card.content else {
        panic!("the product card is a text card")
    };
    assert!(spec.price.starts_with('¥'), "{spec:?}");
    assert!(!spec.title.is_ascii(), "a Chinese product name: {spec:?}");
    assert_eq!(
        c.overlay("yintai-mall-ad").unwrap().content,
        OverlayContent::Image {
            image: ImageSource::Builtin("yintai-mall-ad".into())
        }
    );
    let everyone: Vec<&str> = c
        .active_overlays("default", now)
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    assert_eq!(everyone, ["live-badge", "default-ad", "viewer-coupon"]);
    let coupon = c.overlay("viewer-coupon").unwrap();
    assert!(coupon.is_personal());
    assert_ne!(
        c.render_key_part("yintai-mall", now),
        c.render_key_part("default", now)
    );
}

#[test]
fn a_point_in_the_mall_is_in_the_mall_and_shanghai_is_not() {
    let c = Campaigns::embedded();
    assert_eq!(
        by_point(MALL, &c),
        ("yintai-mall".to_string(), ZoneSource::Geofence)
    );
    // About 100 m north-east of the centre, still inside.
    assert_eq!(by_point((30.2754, 120.1643), &c).0, "yintai-mall");
    assert_eq!(
        by_point(SHANGHAI, &c),
        ("default".to_string(), ZoneSource::Default)
    );
    assert_eq!(by_point(WEST_LAKE, &c).0, "default", "3 km away");
    assert!(c.zone_for_point(SHANGHAI.0, SHANGHAI.1).is_none());
}

#[test]
fn the_default_honours_zone_hints() {
    let c = Campaigns::embedded();
    let d = c.resolve_zone(&ZoneInputs {
        hint: Some("yintai-mall".into()),
        ..ZoneInputs::default()
    });
    assert_eq!(
        (d.zone_id.as_str(), d.source),
        ("yintai-mall", ZoneSource::Hint)
    );
}

fn production() -> Campaigns {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/production.yaml");
    Campaigns::load(&path).unwrap_or_else(|p| panic!("{p:#?}"))
}

#[test]
fn the_production_example_turns_hints_off_and_schedules_the_sale() {
    let c = production();
    assert!(!c.settings.allow_zone_hints);
    assert_eq!(c.settings.renditions.len(), 2);
    assert!(c.allowed_rendition("1080p").is_none());
    let d = c.resolve_zone(&ZoneInputs {
        hint: Some("yintai-mall".into()),
        ..ZoneInputs::default()
    });
    assert_eq!(d.source, ZoneSource::Default);
    assert!(d.note.unwrap().contains("hints are off"));

    let by_cell = c.resolve_zone(&ZoneInputs {
        mec: Some(MecFix {
            zone_id: None,
            cell_id: Some("460-00-5A1B2-02".into()),
        }),
        lat_lon: Some(SHANGHAI),
        hint: None,
    });
    assert_eq!(
        (by_cell.zone_id.as_str(), by_cell.source),
        ("yintai-mall", ZoneSource::Mec)
    );

    // Inside the first building, and in the plaza cut out of it.
    assert_eq!(by_point((30.2760, 120.1608), &c).0, "yintai-mall");
    assert_eq!(by_point((30.2744, 120.1615), &c).0, "default", "the hole");

    let ids = |now| -> Vec<String> {
        c.active_overlays("yintai-mall", now)
            .iter()
            .map(|o| o.id.clone())
            .collect()
    };
    assert_eq!(ids(NOV_11_2026_CST - 1), ["live-badge", "yintai-mall-ad"]);
    assert_eq!(
        ids(NOV_11_2026_CST),
        [
            "live-badge",
            "yintai-mall-ad",
            "singles-day-card",
            "viewer-coupon"
        ]
    );
    let OverlayContent::Card(card) = &c.overlay("singles-day-card").unwrap().content else {
        panic!("a card")
    };
    assert_eq!(
        card.countdown_text(NOV_11_2026_CST).as_deref(),
        Some("24:00:00")
    );
}

/// Places as `line:col path`, without the file name, for comparing.
fn places(problems: &[edge_campaign::Problem], file: &str) -> Vec<String> {
    problems
        .iter()
        .map(|p| {
            let line_col = p
                .place
                .strip_prefix(&format!("{file}:"))
                .unwrap_or_else(|| panic!("{p} is not located in {file}"));
            format!("{line_col} {}", p.path)
        })
        .collect()
}

const BROKEN_TOML: &str = r#"[settings]
allow_zone_hints = true
default_zone = "lobby"
renditions = ["720p", "4k"]

[[zones]]
id = "mall"
[zones.geofence]
type = "Polygon"
coordinates = [[[120.16, 30.27], [120.17, 30.27], [120.17, 30.28], [120.16, 30.28]]]

[[zones]]
id = "mall"
geofence = { type = "Polygon", coordinates = [[[30.27, 120.16], [30.28, 120.17], [30.27, 120.17], [30.27, 120.16]]] }

[[zones]]
id = "tiny"
geofence = { type = "Polygon", coordinates = [[[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]]] }

[[overlays]]
id = "ad"
kind = "image"
image = "builtin:no-such-ad"

[[overlays]]
id = "coupon"
kind = "coupon"
template = "20% off for {nickname}"
opacity = 1.5

[[overlays]]
id = "card"
kind = "card"
title = "Tea"
countdown_to = "next friday"

[[campaigns]]
id = "sale"
zones = ["mall", "atrium"]
overlays = ["ad", "banner"]
start = "2026-11-12T00:00:00+08:00"
end = "2026-11-11T00:00:00+08:00"
"#;

#[test]
fn a_broken_toml_file_lists_every_problem_with_line_and_column() {
    let problems = Campaigns::parse(BROKEN_TOML, Format::Toml, "broken.toml").unwrap_err();
    for p in &problems {
        eprintln!("{p}");
    }
    assert_eq!(
        places(&problems, "broken.toml"),
        [
            "3:16 settings.default_zone",
            "4:23 settings.renditions[1]",
            "10:16 zones[0].geofence.coordinates[0]",
            "13:6 zones[1].id",
            "14:48 zones[1].geofence.coordinates[0][0]",
            "14:65 zones[1].geofence.coordinates[0][1]",
            "14:82 zones[1].geofence.coordinates[0][2]",
            "14:99 zones[1].geofence.coordinates[0][3]",
            "18:47 zones[2].geofence.coordinates[0]",
            "23:9 overlays[0].image",
            "28:12 overlays[1].template",
            "28:12 overlays[1].template",
            "29:11 overlays[1].opacity",
            "31:1 overlays[2].price",
            "35:16 overlays[2].countdown_to",
            "39:18 campaigns[0].zones[1]",
            "40:19 campaigns[0].overlays[1]",
            "42:7 campaigns[0].end",
        ]
    );
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    let all = text.join("\n");
    for expected in [
        "\"lobby\" is not one of the [[zones]]",
        "not closed",
        "duplicate id \"mall\"",
        "are they swapped?",
        "at least 4 positions",
        "no built-in image \"no-such-ad\"",
        "must contain {name}",
        "unknown placeholder {nickname}",
        "needs a non-empty `price`",
        "unknown zone \"atrium\"",
        "unknown overlay \"banner\"",
        "is not after start",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in\n{all}");
    }
}

#[test]
fn a_broken_yaml_file_lists_every_problem_with_line_and_column() {
    let text = "settings:\n  allow_zone_hints: maybe\nzones:\n  - id: a\n    colour: red\n  - name: no id\noverlays:\n  - id: x\n    kind: video\nextra: 1\n";
    let problems = Campaigns::parse(text, Format::Yaml, "b.yaml").unwrap_err();
    assert_eq!(
        places(&problems, "b.yaml"),
        [
            "2:21 settings.allow_zone_hints",
            "5:5 zones[0].colour",
            "6:5 zones[1]",
            "9:11 overlays[0].kind",
            "10:1 extra",
        ],
        "{problems:#?}"
    );
    assert!(
        problems[1].message.contains("unknown field `colour`"),
        "{problems:?}"
    );
    assert!(
        problems[2].message.contains("missing field `id`"),
        "{problems:?}"
    );
}

#[test]
fn syntax_errors_say_where() {
    let e = Campaigns::parse("[[zones]]\nid = \n", Format::Toml, "x.toml").unwrap_err();
    assert!(e[0].place.starts_with("x.toml:2:"), "{e:?}");
    let e = Campaigns::parse("zones:\n  - id: [a\n", Format::Yaml, "x.yaml").unwrap_err();
    assert!(e[0].place.starts_with("x.yaml:"), "{e:?}");
    let e = Campaigns::parse(
        "[[zones]]\nid = \"default\"\ncolour = \"red\"\n",
        Format::Toml,
        "x.toml",
    )
    .unwrap_err();
    assert_eq!(e.len(), 1, "no follow-on problems: {e:?}");
    assert_eq!(
        e[0].place, "x.toml:3:1",
        "an unknown key is shown at the key: {e:?}"
    );
    let e = Campaigns::load(Path::new("/nonexistent/campaigns.toml")).unwrap_err();
    assert!(e[0].message.contains("cannot read"), "{e:?}");
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("edge-campaign-files-{}-{name}", std::process::id()));
    std::fs::create_dir_all(dir.join("ads")).unwrap();
    dir
}

#[test]
fn png_paths_are_relative_to_the_file_and_must_be_pngs() {
    let dir = scratch("png");
    let png =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/assets/overlays/default-ad.png");
    std::fs::copy(&png, dir.join("ads/ours.png")).unwrap();
    std::fs::write(dir.join("ads/notes.png"), "not a picture").unwrap();
    let file = dir.join("campaigns.toml");
    let text = "[[zones]]\nid = \"default\"\n[[overlays]]\nid = \"ours\"\nkind = \"image\"\nimage = \"ads/ours.png\"\n";
    std::fs::write(&file, text).unwrap();
    let c = Campaigns::load(&file).unwrap();
    let OverlayContent::Image {
        image: ImageSource::File { path, .. },
    } = &c.overlays[0].content
    else {
        panic!("a file image")
    };
    assert_eq!(path, &dir.join("ads/ours.png"));

    let text = "[[zones]]\nid = \"default\"\n[[overlays]]\nid = \"a\"\nkind = \"image\"\nimage = \"ads/notes.png\"\n[[overlays]]\nid = \"b\"\nkind = \"image\"\nimage = \"ads/gone.png\"\n";
    std::fs::write(&file, text).unwrap();
    let e = Campaigns::load(&file).unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].message.contains("not a PNG"), "{e:?}");
    assert!(e[1].message.contains("cannot read"), "{e:?}");
    assert!(e[1].place.ends_with("campaigns.toml:10:9"), "{e:?}");
}

mod never_panics {
    use super::*;
    use edge_campaign::DEFAULT_CAMPAIGNS_TOML;
    use proptest::prelude::*;

    fn production_text() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/production.yaml"),
        )
        .unwrap()
    }

    /// Cuts `text` at a character boundary near `fraction` of its length.
    fn cut(text: &str, fraction: f64) -> &str {
        let mut at = (text.len() as f64 * fraction) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        &text[..at]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// A half-saved file (an editor mid-write) is rejected or accepted, never a panic,
        /// and a rejection always says where.
        #[test]
        fn truncated_files_are_judged_not_panicked_on(fraction in 0.0f64..1.0) {
            for (text, format, file) in [
                (DEFAULT_CAMPAIGNS_TOML.to_string(), Format::Toml, "c.toml"),
                (production_text(), Format::Yaml, "c.yaml"),
            ] {
                if let Err(problems) = Campaigns::parse(cut(&text, fraction), format, file) {
                    prop_assert!(!problems.is_empty());
                    for p in &problems {
                        prop_assert!(p.place.starts_with(&format!("{file}:")), "{}", p);
                    }
                }
            }
        }

        #[test]
        fn a_changed_byte_never_panics(at in 0.0f64..1.0, byte in any::<u8>()) {
            let mut bytes = DEFAULT_CAMPAIGNS_TOML.as_bytes().to_vec();
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] = byte;
            let text = String::from_utf8_lossy(&bytes);
            let _ = Campaigns::parse(&text, Format::Toml, "c.toml");
            let _ = Campaigns::parse(&text, Format::Yaml, "c.yaml");
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = Campaigns::parse(&text, Format::Toml, "c.toml");
            let _ = Campaigns::parse(&text, Format::Yaml, "c.yaml");
        }
    }
}
