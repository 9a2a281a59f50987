//! Geofences: GeoJSON Polygon and MultiPolygon geometries (RFC 7946, positions `[lon, lat]`)
//! and the point-in-polygon test that puts a viewer's `lat`/`lon` into a zone.
//!
//! Coordinates are treated as a plane, which is exact enough for fences of a few kilometres
//! and wrong only for fences that cross the antimeridian (none of a MEC site's do).

use crate::located::KeyPath;
use serde::Serialize;
use serde_json::Value;

/// Axis-aligned box of a ring, to answer "far away" without walking its edges.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    fn of(points: &[[f64; 2]]) -> BBox {
        let mut b = BBox {
            min_lon: f64::INFINITY,
            min_lat: f64::INFINITY,
            max_lon: f64::NEG_INFINITY,
            max_lat: f64::NEG_INFINITY,
        };
        for &[lon, lat] in points {
            b.min_lon = b.min_lon.min(lon);
            b.min_lat = b.min_lat.min(lat);
            b.max_lon = b.max_lon.max(lon);
            b.max_lat = b.max_lat.max(lat);
        }
        b
    }

    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.min_lat..=self.max_lat).contains(&lat) && (self.min_lon..=self.max_lon).contains(&lon)
    }
}

/// A closed ring: first position equals the last.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ring {
    /// `[lon, lat]` pairs, closed.
    pub points: Vec<[f64; 2]>,
    pub bbox: BBox,
}

impl Ring {
    /// Even-odd rule: a ray from the point crosses the boundary an odd number of times.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        if !self.bbox.contains(lat, lon) {
            return false;
        }
        let mut inside = false;
        for edge in self.points.windows(2) {
            let ([lon_a, lat_a], [lon_b, lat_b]) = (edge[0], edge[1]);
            if (lat_a > lat) != (lat_b > lat) {
                let lon_cross = lon_a + (lat - lat_a) * (lon_b - lon_a) / (lat_b - lat_a);
                if lon < lon_cross {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Shoelace area in square degrees (sign says the winding).
    fn signed_area(&self) -> f64 {
        self.points
            .windows(2)
            .map(|e| e[0][0] * e[1][1] - e[1][0] * e[0][1])
            .sum::<f64>()
            / 2.0
    }
}

/// An outer ring and the holes cut out of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Polygon {
    pub outer: Ring,
    pub holes: Vec<Ring>,
}

impl Polygon {
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        self.outer.contains(lat, lon) && !self.holes.iter().any(|h| h.contains(lat, lon))
    }
}

/// A zone's geofence: one or more polygons (a MultiPolygon), each with optional holes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Geofence {
    pub polygons: Vec<Polygon>,
}

impl Geofence {
    /// Whether a WGS 84 point lies inside (holes excluded). Non-finite input is never inside.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        lat.is_finite() && lon.is_finite() && self.polygons.iter().any(|p| p.contains(lat, lon))
    }

    /// Reads a GeoJSON geometry; every problem goes to `problems` with its key path.
    pub(crate) fn from_geojson(
        value: &Value,
        path: &KeyPath,
        problems: &mut Vec<(KeyPath, String)>,
    ) -> Option<Geofence> {
        let Some(object) = value.as_object() else {
            problems.push((
                path.clone(),
                "must be a GeoJSON geometry, e.g. { type = \"Polygon\", coordinates = [[[lon, lat], ...]] }".into(),
            ));
            return None;
        };
        for key in object.keys() {
            if !matches!(key.as_str(), "type" | "coordinates" | "bbox") {
                problems.push((
                    path.key(key).the_key(),
                    format!("unknown GeoJSON geometry member {key:?} (expected type, coordinates)"),
                ));
            }
        }
        let coordinates = path.key("coordinates");
        let Some(coords) = object.get("coordinates") else {
            problems.push((path.clone(), "missing `coordinates`".into()));
            return None;
        };
        let polygons = match object.get("type").and_then(Value::as_str) {
            Some("Polygon") => vec![polygon(coords, &coordinates, problems)?],
            Some("MultiPolygon") => {
                let parts = array(coords, &coordinates, "an array of polygons", problems)?;
                if parts.is_empty() {
                    problems.push((
                        coordinates,
                        "a MultiPolygon needs at least one polygon".into(),
                    ));
                    return None;
                }
                let parsed: Vec<Option<Polygon>> = parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| polygon(p, &coordinates.index(i), problems))
                    .collect();
                parsed.into_iter().collect::<Option<Vec<_>>>()?
            }
            Some(other) => {
                problems.push((
                    path.key("type"),
                    format!("geometry type {other:?} has no inside; use Polygon or MultiPolygon"),
                ));
                return None;
            }
            None => {
                problems.push((
                    path.key("type"),
                    "missing or not a string; use \"Polygon\" or \"MultiPolygon\"".into(),
                ));
                return None;
            }
        };
        Some(Geofence { polygons })
    }
}

fn array<'a>(
    value: &'a Value,
    path: &KeyPath,
    what: &str,
    problems: &mut Vec<(KeyPath, String)>,
) -> Option<&'a Vec<Value>> {
    let a = value.as_array();
    if a.is_none() {
        problems.push((path.clone(), format!("must be {what}")));
    }
    a
}

fn polygon(
    value: &Value,
    path: &KeyPath,
    problems: &mut Vec<(KeyPath, String)>,
) -> Option<Polygon> {
    let rings = array(
        value,
        path,
        "an array of rings (outer ring first, then holes)",
        problems,
    )?;
    if rings.is_empty() {
        problems.push((path.clone(), "a polygon needs an outer ring".into()));
        return None;
    }
    // Parse every ring before giving up, so all their problems are reported.
    let parsed: Vec<Option<Ring>> = rings
        .iter()
        .enumerate()
        .map(|(i, r)| ring(r, &path.index(i), problems))
        .collect();
    let mut rings = parsed.into_iter().collect::<Option<Vec<_>>>()?.into_iter();
    let outer = rings.next()?;
    Some(Polygon {
        outer,
        holes: rings.collect(),
    })
}

fn ring(value: &Value, path: &KeyPath, problems: &mut Vec<(KeyPath, String)>) -> Option<Ring> {
    let items = array(value, path, "an array of [lon, lat] positions", problems)?;
    let before = problems.len();
    let points: Vec<[f64; 2]> = items
        .iter()
        .enumerate()
        .filter_map(|(i, p)| position(p, &path.index(i), problems))
        .collect();
    if problems.len() > before {
        return None;
    }
    if points.len() < 4 {
        problems.push((
            path.clone(),
            format!(
                "a ring needs at least 4 positions (3 corners and the first again), got {}",
                points.len()
            ),
        ));
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    if first != last {
        problems.push((
            path.clone(),
            format!(
                "ring is not closed: the last position {last:?} must repeat the first {first:?}"
            ),
        ));
        return None;
    }
    let ring = Ring {
        bbox: BBox::of(&points),
        points,
    };
    if ring.signed_area() == 0.0 {
        problems.push((path.clone(), "ring encloses no area".into()));
        return None;
    }
    Some(ring)
}

fn position(
    value: &Value,
    path: &KeyPath,
    problems: &mut Vec<(KeyPath, String)>,
) -> Option<[f64; 2]> {
    let numbers: Option<Vec<f64>> = value
        .as_array()
        .and_then(|a| a.iter().map(Value::as_f64).collect());
    let Some(numbers) = numbers.filter(|n| n.len() == 2 || n.len() == 3) else {
        problems.push((
            path.clone(),
            "a position is [lon, lat] (or [lon, lat, altitude]) in numbers".into(),
        ));
        return None;
    };
    let (lon, lat) = (numbers[0], numbers[1]);
    let mut ok = true;
    if !(-180.0..=180.0).contains(&lon) {
        problems.push((
            path.clone(),
            format!("longitude {lon} is out of range -180..=180"),
        ));
        ok = false;
    }
    if !(-90.0..=90.0).contains(&lat) {
        let swapped = (-90.0..=90.0).contains(&lon);
        problems.push((
            path.clone(),
            format!(
                "latitude {lat} is out of range -90..=90{}",
                if swapped {
                    " (GeoJSON positions are [lon, lat]: are they swapped?)"
                } else {
                    ""
                }
            ),
        ));
        ok = false;
    }
    ok.then_some([lon, lat])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn fence(value: Value) -> Result<Geofence, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let g = Geofence::from_geojson(&value, &KeyPath::default().key("geofence"), &mut problems);
        if problems.is_empty() {
            Ok(g.expect("no problems means a geofence"))
        } else {
            Err(problems
                .into_iter()
                .map(|(p, m)| (p.to_string(), m))
                .collect())
        }
    }

    fn square_with_hole() -> Geofence {
        fence(json!({"type": "Polygon", "coordinates": [
            [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0], [0.0, 0.0]],
            [[4.0, 4.0], [6.0, 4.0], [6.0, 6.0], [4.0, 6.0], [4.0, 4.0]]
        ]}))
        .unwrap()
    }

    #[test]
    fn holes_are_outside() {
        let g = square_with_hole();
        assert!(g.contains(2.0, 2.0));
        assert!(!g.contains(5.0, 5.0), "inside the hole");
        assert!(!g.contains(11.0, 5.0));
        assert!(!g.contains(f64::NAN, 5.0));
    }

    #[test]
    fn multipolygons_contain_each_part() {
        let g = fence(json!({"type": "MultiPolygon", "coordinates": [
            [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
            [[[5.0, 5.0], [6.0, 5.0], [6.0, 6.0], [5.0, 6.0], [5.0, 5.0]]]
        ]}))
        .unwrap();
        assert!(g.contains(0.2, 0.8), "lat 0.2, lon 0.8 in the triangle");
        assert!(g.contains(5.5, 5.5));
        assert!(!g.contains(3.0, 3.0));
    }

    #[test]
    fn every_bad_ring_and_position_is_reported() {
        let e = fence(json!({"type": "Polygon", "coordinates": [
            [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.5]],
            [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]],
            [[200.0, 0.0], [30.2, 120.1], [1.0, 1.0], [200.0, 0.0]],
        ], "crs": "x"}))
        .unwrap_err();
        let got: Vec<(&str, bool)> = e.iter().map(|(p, m)| (p.as_str(), !m.is_empty())).collect();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [
                "geofence.crs",
                "geofence.coordinates[0]",
                "geofence.coordinates[1]",
                "geofence.coordinates[2][0]",
                "geofence.coordinates[2][1]",
                "geofence.coordinates[2][3]",
            ]
        );
        assert!(e[1].1.contains("not closed"), "{e:?}");
        assert!(e[2].1.contains("at least 4"), "{e:?}");
        assert!(e[4].1.contains("swapped"), "{e:?}");
    }

    #[test]
    fn non_area_geometries_are_refused() {
        let e = fence(json!({"type": "Point", "coordinates": [120.0, 30.0]})).unwrap_err();
        assert_eq!(e[0].0, "geofence.type");
        let e = fence(json!({"type": "Polygon", "coordinates": [
            [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, 0.0]]]}))
        .unwrap_err();
        assert!(e[0].1.contains("no area"), "{e:?}");
        let e = fence(json!("Polygon")).unwrap_err();
        assert_eq!(e[0].0, "geofence");
    }

    /// A convex polygon: `n` corners on a circle (radius in degrees) around a centre.
    fn regular(centre: (f64, f64), radius: f64, n: usize, turn: f64) -> Vec<[f64; 2]> {
        let mut ring: Vec<[f64; 2]> = (0..n)
            .map(|i| {
                let a = turn + i as f64 * std::f64::consts::TAU / n as f64;
                [centre.0 + radius * a.cos(), centre.1 + radius * a.sin()]
            })
            .collect();
        ring.push(ring[0]);
        ring
    }

    proptest! {
        #[test]
        fn convex_polygons_contain_their_centroid_and_not_far_points(
            lon in -170.0f64..170.0, lat in -80.0f64..80.0,
            radius in 0.0005f64..5.0, n in 3usize..24, turn in 0.0f64..6.3,
            far_lat in -90.0f64..90.0, far_lon in -180.0f64..180.0,
        ) {
            let g = fence(json!({"type": "Polygon", "coordinates": [regular((lon, lat), radius, n, turn)]})).unwrap();
            let ring = &g.polygons[0].outer.points[..n];
            let centroid_lon = ring.iter().map(|p| p[0]).sum::<f64>() / n as f64;
            let centroid_lat = ring.iter().map(|p| p[1]).sum::<f64>() / n as f64;
            prop_assert!(g.contains(centroid_lat, centroid_lon));
            let b = g.polygons[0].outer.bbox;
            if !b.contains(far_lat, far_lon) {
                prop_assert!(!g.contains(far_lat, far_lon));
            }
        }

        #[test]
        fn points_in_a_hole_are_outside_and_the_rest_of_the_ring_is_inside(
            lat in 0.1f64..9.9, lon in 0.1f64..9.9,
        ) {
            let g = square_with_hole();
            let in_hole = (4.0..=6.0).contains(&lat) && (4.0..=6.0).contains(&lon);
            let on_hole_edge = [lat, lon].iter().any(|v| (v - 4.0).abs() < 1e-9 || (v - 6.0).abs() < 1e-9);
            if !on_hole_edge {
                prop_assert_eq!(g.contains(lat, lon), !in_hole);
            }
        }

        #[test]
        fn fences_never_panic_on_any_numbers(coords in proptest::collection::vec((any::<f64>(), any::<f64>()), 0..8)) {
            let ring: Vec<Value> = coords.iter().map(|(a, b)| json!([a, b])).collect();
            let _ = fence(json!({"type": "Polygon", "coordinates": [ring]}));
        }
    }
}
