//! Where is the viewer: MEC location, then geofence, then hint, then the default zone.

use crate::model::Zone;
use crate::Campaigns;
use serde::Serialize;

/// What the ETSI MEC 013 Location API says about a viewer's UE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MecFix {
    /// `UserInfo.zoneId`.
    pub zone_id: Option<String>,
    /// `UserInfo.accessPointId` (for a cell, its cell identity).
    pub cell_id: Option<String>,
}

/// Everything known about a viewer's location when it joins or moves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZoneInputs {
    pub mec: Option<MecFix>,
    /// `?lat=&lon=` from the viewer's URL, WGS 84 degrees.
    pub lat_lon: Option<(f64, f64)>,
    /// `?zone=` from the viewer's URL.
    pub hint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneSource {
    Mec,
    Geofence,
    Hint,
    Default,
}

impl ZoneSource {
    /// A metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ZoneSource::Mec => "mec",
            ZoneSource::Geofence => "geofence",
            ZoneSource::Hint => "hint",
            ZoneSource::Default => "default",
        }
    }
}

/// The zone a viewer is in, how that was decided, and why earlier sources did not decide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneDecision {
    pub zone_id: String,
    pub source: ZoneSource,
    /// Set when an input was given but fell through (`"hint \"x\" ignored: hints are off"`).
    pub note: Option<String>,
}

impl Campaigns {
    /// The first zone (in file order) whose geofence holds the point.
    pub fn zone_for_point(&self, lat: f64, lon: f64) -> Option<&Zone> {
        self.zones
            .iter()
            .find(|z| z.geofence.as_ref().is_some_and(|g| g.contains(lat, lon)))
    }

    /// The zone a MEC fix maps to: by cell id first (the finer of the two), then by zone id.
    pub fn zone_for_mec(&self, zone_id: Option<&str>, cell_id: Option<&str>) -> Option<&Zone> {
        let by_cell = cell_id.and_then(|c| {
            self.zones
                .iter()
                .find(|z| z.cell_ids.iter().any(|id| id == c))
        });
        by_cell.or_else(|| {
            zone_id.and_then(|m| {
                self.zones
                    .iter()
                    .find(|z| z.mec_zone_ids.iter().any(|id| id == m))
            })
        })
    }

    /// Decides a viewer's zone in exactly this order: MEC fix, `lat`/`lon` against the
    /// geofences, a `zone` hint (only where the settings allow hints), the default zone.
    pub fn resolve_zone(&self, inputs: &ZoneInputs) -> ZoneDecision {
        let mut notes: Vec<String> = Vec::new();
        let decided = |zone: &Zone, source, notes: Vec<String>| ZoneDecision {
            zone_id: zone.id.clone(),
            source,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        };

        if let Some(fix) = &inputs.mec {
            match self.zone_for_mec(fix.zone_id.as_deref(), fix.cell_id.as_deref()) {
                Some(zone) => return decided(zone, ZoneSource::Mec, notes),
                None => notes.push(format!(
                    "MEC zone {:?} / cell {:?} maps to no campaign zone",
                    fix.zone_id.as_deref().unwrap_or("-"),
                    fix.cell_id.as_deref().unwrap_or("-")
                )),
            }
        }
        if let Some((lat, lon)) = inputs.lat_lon {
            let valid = (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
            match self.zone_for_point(lat, lon) {
                Some(zone) if valid => return decided(zone, ZoneSource::Geofence, notes),
                _ if !valid => notes.push(format!("lat/lon {lat},{lon} is not a WGS 84 point")),
                _ => notes.push(format!("lat/lon {lat},{lon} is inside no geofence")),
            }
        }
        if let Some(hint) = &inputs.hint {
            match self.zone(hint) {
                _ if !self.settings.allow_zone_hints => {
                    notes.push(format!("zone hint {hint:?} ignored: hints are off"))
                }
                Some(zone) => return decided(zone, ZoneSource::Hint, notes),
                None => notes.push(format!("zone hint {hint:?} names no zone")),
            }
        }
        ZoneDecision {
            zone_id: self.settings.default_zone.clone(),
            source: ZoneSource::Default,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;
    use proptest::prelude::*;

    /// Two zones with every kind of locator, so each source can win or miss.
    fn two_zones(allow_hints: bool) -> Campaigns {
        let text = format!(
            r#"
[settings]
allow_zone_hints = {allow_hints}
default_zone = "rest"

[[zones]]
id = "mall"
mec_zone_ids = ["zone01"]
cell_ids = ["cell-7"]
[zones.geofence]
type = "Polygon"
coordinates = [[[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0], [10.0, 10.0]]]

[[zones]]
id = "park"
mec_zone_ids = ["zone02"]
[zones.geofence]
type = "Polygon"
coordinates = [[[20.0, 20.0], [21.0, 20.0], [21.0, 21.0], [20.0, 21.0], [20.0, 20.0]]]

[[zones]]
id = "rest"
"#
        );
        Campaigns::parse(&text, Format::Toml, "test.toml").unwrap()
    }

    #[test]
    fn cell_ids_are_finer_than_mec_zone_ids() {
        let c = two_zones(true);
        let z = c.zone_for_mec(Some("zone02"), Some("cell-7")).unwrap();
        assert_eq!(z.id, "mall");
        assert_eq!(
            c.zone_for_mec(Some("zone02"), Some("cell-x")).unwrap().id,
            "park"
        );
        assert!(c.zone_for_mec(None, None).is_none());
    }

    #[test]
    fn fall_throughs_are_explained() {
        let c = two_zones(false);
        let d = c.resolve_zone(&ZoneInputs {
            mec: Some(MecFix {
                zone_id: Some("zone99".into()),
                cell_id: None,
            }),
            lat_lon: Some((50.0, 50.0)),
            hint: Some("mall".into()),
        });
        assert_eq!(
            (d.zone_id.as_str(), d.source),
            ("rest", ZoneSource::Default)
        );
        let note = d.note.unwrap();
        assert!(
            note.contains("zone99")
                && note.contains("no geofence")
                && note.contains("hints are off"),
            "{note}"
        );

        let c = two_zones(true);
        let d = c.resolve_zone(&ZoneInputs {
            hint: Some("atlantis".into()),
            ..ZoneInputs::default()
        });
        assert_eq!(d.source, ZoneSource::Default);
        assert!(d.note.unwrap().contains("names no zone"));
        let d = c.resolve_zone(&ZoneInputs::default());
        assert_eq!(
            (d.zone_id.as_str(), d.source, d.note),
            ("rest", ZoneSource::Default, None)
        );
    }

    /// Which input each strategy supplies: one that matches a zone, one that matches none, or
    /// none at all.
    #[derive(Clone, Copy, Debug)]
    enum Given {
        Absent,
        Miss,
        Hit(usize),
    }

    fn given() -> impl Strategy<Value = Given> {
        prop_oneof![
            Just(Given::Absent),
            Just(Given::Miss),
            (0usize..2).prop_map(Given::Hit)
        ]
    }

    const ZONES: [&str; 2] = ["mall", "park"];

    proptest! {
        #[test]
        fn mec_beats_geofence_beats_hint_beats_default(
            mec in given(), point in given(), hint in given(), allow_hints in any::<bool>(),
            jitter in 0.01f64..0.99,
        ) {
            let c = two_zones(allow_hints);
            let inputs = ZoneInputs {
                mec: match mec {
                    Given::Absent => None,
                    Given::Miss => Some(MecFix { zone_id: Some("zone-unknown".into()), cell_id: None }),
                    Given::Hit(i) => Some(MecFix { zone_id: Some(format!("zone0{}", i + 1)), cell_id: None }),
                },
                lat_lon: match point {
                    Given::Absent => None,
                    Given::Miss => Some((-45.0 + jitter, 100.0 + jitter)),
                    Given::Hit(i) => {
                        let base = 10.0 + 10.0 * i as f64;
                        Some((base + jitter, base + 1.0 - jitter))
                    }
                },
                hint: match hint {
                    Given::Absent => None,
                    Given::Miss => Some("nowhere".into()),
                    Given::Hit(i) => Some(ZONES[i].to_string()),
                },
            };
            let d = c.resolve_zone(&inputs);
            let expected = match (mec, point, hint) {
                (Given::Hit(i), _, _) => (ZONES[i], ZoneSource::Mec),
                (_, Given::Hit(i), _) => (ZONES[i], ZoneSource::Geofence),
                (_, _, Given::Hit(i)) if allow_hints => (ZONES[i], ZoneSource::Hint),
                _ => ("rest", ZoneSource::Default),
            };
            prop_assert_eq!((d.zone_id.as_str(), d.source), expected);
            // A given input that did not decide is always explained, and only then.
            let mec_decided = matches!(mec, Given::Hit(_));
            let point_decided = mec_decided || matches!(point, Given::Hit(_));
            let hint_decides = allow_hints && matches!(hint, Given::Hit(_));
            let hint_fell = matches!(hint, Given::Miss) || (matches!(hint, Given::Hit(_)) && !hint_decides);
            let any_fell = matches!(mec, Given::Miss)
                || (!mec_decided && matches!(point, Given::Miss))
                || (!point_decided && hint_fell);
            prop_assert_eq!(d.note.is_some(), any_fell, "{:?}", d.note);
        }

        #[test]
        fn hints_never_decide_when_disallowed(hint in "[a-z]{1,8}|mall|park") {
            let c = two_zones(false);
            let d = c.resolve_zone(&ZoneInputs { hint: Some(hint), ..ZoneInputs::default() });
            prop_assert_eq!(d.source, ZoneSource::Default);
            prop_assert_eq!(d.zone_id, "rest");
        }
    }
}
