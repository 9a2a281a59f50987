//! From a located document to validated [`Campaigns`], collecting every problem on the way.
//!
//! Each section item is deserialized on its own, so a type error in one zone does not hide the
//! problems of the next; cross-references are checked against whatever did parse.

use crate::geo::Geofence;
use crate::located::{KeyPath, Located, Node};
use crate::model::{
    fnv1a, Avoid, Campaign, CardSpec, CouponSpec, ImageSource, OverlayContent, OverlaySpec,
    Placement, Rendition, Settings, TapAction, Targets, Zone, BUILTIN_IMAGES, NAME_PLACEHOLDER,
};
use crate::schedule::{parse_rfc3339, Schedule};
use crate::Campaigns;
use edge_core::placement::Anchor;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Problems found so far, by key path; turned into `file:line:col` at the end.
type Findings = Vec<(KeyPath, String)>;

const SECTIONS: &[&str] = &["settings", "zones", "overlays", "campaigns"];
const ALL_ZONES: &str = "*";
const DEFAULT_RENDITIONS: &[&str] = &["360p", "720p", "1080p"];
const MAX_ZOOM_LIMIT: f64 = 16.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    allow_zone_hints: bool,
    #[serde(default = "default_zone_id")]
    default_zone: String,
    renditions: Option<Vec<String>>,
    default_rendition: Option<String>,
    #[serde(default = "default_max_zoom")]
    max_zoom: f64,
}

fn default_zone_id() -> String {
    "default".into()
}

fn default_max_zoom() -> f64 {
    4.0
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            allow_zone_hints: false,
            default_zone: default_zone_id(),
            renditions: None,
            default_rendition: None,
            max_zoom: default_max_zoom(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    id: String,
    name: Option<String>,
    geofence: Option<serde_json::Value>,
    #[serde(default)]
    mec_zone_ids: Vec<String>,
    #[serde(default)]
    cell_ids: Vec<String>,
}

#[derive(Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Image,
    Card,
    Coupon,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    id: String,
    kind: RawKind,
    image: Option<String>,
    title: Option<String>,
    price: Option<String>,
    countdown_to: Option<String>,
    template: Option<String>,
    label: Option<String>,
    product_id: Option<String>,
    link: Option<String>,
    #[serde(default)]
    placement: RawPlacement,
    #[serde(default = "full_opacity")]
    opacity: f32,
    tap: Option<TapAction>,
}

fn full_opacity() -> f32 {
    1.0
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    #[serde(default)]
    anchor: Anchor,
    #[serde(default)]
    margin: [i32; 2],
    #[serde(default)]
    avoid: Avoid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    id: String,
    zones: Vec<String>,
    overlays: Vec<String>,
    start: Option<String>,
    end: Option<String>,
}

/// Validates a parsed document. `base_dir` resolves relative PNG paths.
pub(crate) fn build(doc: &Located, base_dir: &Path, source: &str) -> Result<Campaigns, Findings> {
    let mut f = Findings::new();
    let root = KeyPath::default();
    if !matches!(doc.node, Node::Map(_)) {
        f.push((
            root,
            "a campaign file is a table with [settings], [[zones]], [[overlays]] and [[campaigns]]"
                .into(),
        ));
        return Err(f);
    }
    if let Node::Map(entries) = &doc.node {
        for e in entries
            .iter()
            .filter(|e| !SECTIONS.contains(&e.key.as_str()))
        {
            f.push((
                root.key(&e.key).the_key(),
                format!(
                    "unknown section {:?} (expected one of {})",
                    e.key,
                    SECTIONS.join(", ")
                ),
            ));
        }
    }

    let settings_path = root.key("settings");
    let raw_settings = match doc.get("settings") {
        Some(node) => deserialize::<RawSettings>(node, &settings_path, &mut f),
        None => Some(RawSettings::default()),
    };
    let raw_zones: Vec<Option<RawZone>> = section(doc, "zones", &mut f);
    let raw_overlays: Vec<Option<RawOverlay>> = section(doc, "overlays", &mut f);
    let raw_campaigns: Vec<Option<RawCampaign>> = section(doc, "campaigns", &mut f);

    let zones = zones(&raw_zones, &mut f);
    let overlays = overlays(&raw_overlays, base_dir, &mut f);
    // Ids straight from the document, so an item with some other mistake still counts as
    // defined and its references do not pile up as follow-on problems.
    let zone_ids = ids_in(doc, "zones");
    let overlay_ids = ids_in(doc, "overlays");
    let campaigns = campaigns(&raw_campaigns, &zone_ids, &overlay_ids, &mut f);
    let settings = raw_settings.and_then(|s| settings(s, &zone_ids, &settings_path, &mut f));

    match settings {
        Some(settings) if f.is_empty() => Ok(Campaigns {
            settings,
            zones,
            overlays,
            campaigns,
            source: source.to_string(),
        }),
        _ => Err(f),
    }
}

/// The string `id`s of a section's items, whether or not the items are otherwise valid.
fn ids_in<'a>(doc: &'a Located, section: &str) -> HashSet<&'a str> {
    match doc.get(section).map(|n| &n.node) {
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(|item| match item.get("id").map(|id| &id.node) {
                Some(Node::Str(id)) => Some(id.as_str()),
                _ => None,
            })
            .collect(),
        _ => HashSet::new(),
    }
}

/// Deserializes one item on its own; a type error names the key path inside it.
fn deserialize<T: DeserializeOwned>(node: &Located, path: &KeyPath, f: &mut Findings) -> Option<T> {
    node.deserialize(path)
        .map_err(|finding| f.push(finding))
        .ok()
}

/// Every item of an array-of-tables section; `None` for those that did not deserialize.
fn section<T: DeserializeOwned>(doc: &Located, name: &str, f: &mut Findings) -> Vec<Option<T>> {
    let path = KeyPath::default().key(name);
    match doc.get(name).map(|n| &n.node) {
        None => Vec::new(),
        Some(Node::Seq(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| deserialize(item, &path.index(i), f))
            .collect(),
        Some(_) => {
            f.push((path, format!("must be an array of tables ([[{name}]])")));
            Vec::new()
        }
    }
}

/// Ids appear in URLs (`?zone=`) and metrics labels: keep them plain.
fn check_id(id: &str, path: &KeyPath, seen: &mut HashSet<String>, f: &mut Findings) {
    let plain = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        f.push((
            path.clone(),
            format!("{id:?} is not an id: use letters, digits, '-', '_' or '.'"),
        ));
    } else if !seen.insert(id.to_string()) {
        f.push((path.clone(), format!("duplicate id {id:?}")));
    }
}

fn zones(raw: &[Option<RawZone>], f: &mut Findings) -> Vec<Zone> {
    let mut seen = HashSet::new();
    // MEC and cell ids must name one zone each, or MEC resolution would be ambiguous.
    let mut mec_owner: HashMap<&str, &str> = HashMap::new();
    let mut cell_owner: HashMap<&str, &str> = HashMap::new();
    let mut zones = Vec::new();
    for (i, z) in raw.iter().enumerate() {
        let Some(z) = z else { continue };
        let path = KeyPath::default().key("zones").index(i);
        check_id(&z.id, &path.key("id"), &mut seen, f);
        for (key, ids, owners) in [
            ("mec_zone_ids", &z.mec_zone_ids, &mut mec_owner),
            ("cell_ids", &z.cell_ids, &mut cell_owner),
        ] {
            for (j, id) in ids.iter().enumerate() {
                let at = path.key(key).index(j);
                if id.trim().is_empty() {
                    f.push((at, "must not be empty".into()));
                } else if let Some(owner) = owners.insert(id, &z.id) {
                    f.push((at, format!("{id:?} already maps to zone {owner:?}")));
                }
            }
        }
        let geofence = z
            .geofence
            .as_ref()
            .and_then(|g| Geofence::from_geojson(g, &path.key("geofence"), f));
        zones.push(Zone {
            id: z.id.clone(),
            name: z.name.clone().unwrap_or_else(|| z.id.clone()),
            geofence,
            mec_zone_ids: z.mec_zone_ids.clone(),
            cell_ids: z.cell_ids.clone(),
        });
    }
    zones
}

fn overlays(raw: &[Option<RawOverlay>], base_dir: &Path, f: &mut Findings) -> Vec<OverlaySpec> {
    let mut seen = HashSet::new();
    let mut overlays = Vec::new();
    for (i, o) in raw.iter().enumerate() {
        let Some(o) = o else { continue };
        let path = KeyPath::default().key("overlays").index(i);
        check_id(&o.id, &path.key("id"), &mut seen, f);
        if !(0.0..=1.0).contains(&o.opacity) {
            f.push((
                path.key("opacity"),
                format!("must be 0..=1, got {}", o.opacity),
            ));
        }
        for (axis, m) in o.placement.margin.iter().enumerate() {
            if m.unsigned_abs() > 8192 {
                f.push((
                    path.key("placement").key("margin").index(axis),
                    format!("{m} px is off any frame (at most 8192)"),
                ));
            }
        }
        let described = describing_text(o, &path, f);
        if let Some(content) = content(o, &path, base_dir, f) {
            let placement = Placement {
                anchor: o.placement.anchor,
                margin: o.placement.margin,
                avoid: o.placement.avoid,
            };
            let (label, product_id, link) = described;
            // What clients are told about an overlay is part of its rendering too.
            let digest = serde_json::to_vec(&(
                &content,
                &placement,
                o.opacity,
                o.tap,
                &label,
                &product_id,
                &link,
            ))
            .expect("overlay fields are plain data and serialize");
            overlays.push(OverlaySpec {
                id: o.id.clone(),
                content,
                placement,
                opacity: o.opacity,
                tap: o.tap,
                label,
                product_id,
                link,
                fingerprint: fnv1a(&digest),
            });
        }
    }
    overlays
}

/// Longest `label` and `product_id`, in characters: a sentence and an SKU, not a document.
const MAX_LABEL_CHARS: usize = 200;
const MAX_PRODUCT_ID_CHARS: usize = 128;
/// Longest `link` (what browsers and shop apps reliably take).
const MAX_LINK_BYTES: usize = 2048;

/// What clients are told about an overlay besides its pixels: its words for screen readers,
/// the product it sells and a link (checked, trimmed; `None` when absent).
fn describing_text(
    o: &RawOverlay,
    path: &KeyPath,
    f: &mut Findings,
) -> (Option<String>, Option<String>, Option<String>) {
    let mut text = |key: &str, value: &Option<String>, max_chars: usize, link: bool| {
        let value = value.as_deref()?.trim();
        let problem = if value.is_empty() {
            Some("must not be empty (leave the key out instead)".to_string())
        } else if value.chars().count() > max_chars {
            Some(format!("at most {max_chars} characters"))
        } else if value.chars().any(char::is_control) {
            Some("must not contain control characters".to_string())
        } else if link && !(value.starts_with("https://") || value.starts_with("http://")) {
            Some(format!("{value:?} is not an http(s):// link"))
        } else if link && value.chars().any(char::is_whitespace) {
            Some("must not contain spaces (percent-encode them)".to_string())
        } else {
            None
        };
        match problem {
            Some(problem) => {
                f.push((path.key(key), problem));
                None
            }
            None => Some(value.to_string()),
        }
    };
    let label = text("label", &o.label, MAX_LABEL_CHARS, false);
    let product_id = text("product_id", &o.product_id, MAX_PRODUCT_ID_CHARS, false);
    // Links are ASCII once percent-encoded, so characters are bytes.
    let link = text("link", &o.link, MAX_LINK_BYTES, true);
    (label, product_id, link)
}

/// The kind-specific fields: those the kind needs must be there, the others must not.
fn content(
    o: &RawOverlay,
    path: &KeyPath,
    base_dir: &Path,
    f: &mut Findings,
) -> Option<OverlayContent> {
    let fields: [(&str, &Option<String>, RawKind); 5] = [
        ("image", &o.image, RawKind::Image),
        ("title", &o.title, RawKind::Card),
        ("price", &o.price, RawKind::Card),
        ("countdown_to", &o.countdown_to, RawKind::Card),
        ("template", &o.template, RawKind::Coupon),
    ];
    let kind_name = |k: RawKind| match k {
        RawKind::Image => "image",
        RawKind::Card => "card",
        RawKind::Coupon => "coupon",
    };
    let before = f.len();
    for (key, value, owner) in fields {
        if value.is_some() && owner != o.kind {
            f.push((
                path.key(key),
                format!(
                    "`{key}` belongs to kind = \"{}\", not \"{}\"",
                    kind_name(owner),
                    kind_name(o.kind)
                ),
            ));
        }
    }
    let required = |key: &str, value: &Option<String>, f: &mut Findings| -> Option<String> {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => Some(v.to_string()),
            _ => {
                f.push((
                    path.key(key),
                    format!("kind = \"{}\" needs a non-empty `{key}`", kind_name(o.kind)),
                ));
                None
            }
        }
    };
    let content = match o.kind {
        RawKind::Image => {
            let image = required("image", &o.image, f)?;
            image_source(&image, &path.key("image"), base_dir, f)
                .map(|image| OverlayContent::Image { image })
        }
        RawKind::Card => {
            let title = required("title", &o.title, f);
            let price = required("price", &o.price, f);
            let countdown = match &o.countdown_to {
                Some(text) => match parse_rfc3339(text) {
                    Ok(t) => Some(Some(t)),
                    Err(e) => {
                        f.push((path.key("countdown_to"), e));
                        None
                    }
                },
                None => Some(None),
            };
            Some(OverlayContent::Card(CardSpec {
                title: title?,
                price: price?,
                countdown_to_unix_secs: countdown?,
            }))
        }
        RawKind::Coupon => {
            let template = required("template", &o.template, f)?;
            check_template(&template, &path.key("template"), f);
            Some(OverlayContent::Coupon(CouponSpec { template }))
        }
    };
    content.filter(|_| f.len() == before)
}

fn image_source(
    image: &str,
    path: &KeyPath,
    base_dir: &Path,
    f: &mut Findings,
) -> Option<ImageSource> {
    if let Some(name) = image.strip_prefix("builtin:") {
        if BUILTIN_IMAGES.contains(&name) {
            return Some(ImageSource::Builtin(name.to_string()));
        }
        f.push((
            path.clone(),
            format!(
                "no built-in image {name:?}; built-ins: {}",
                BUILTIN_IMAGES.join(", ")
            ),
        ));
        return None;
    }
    let file = base_dir.join(image);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => {
            f.push((path.clone(), format!("cannot read {}: {e}", file.display())));
            return None;
        }
    };
    // Decoded whole, as the node does when it draws it: a PNG whose header is fine but whose
    // pixels are damaged is refused here, not when a viewer first needs it.
    if let Err(e) = decode_png(&bytes) {
        f.push((
            path.clone(),
            format!("{} is not a PNG ({e})", file.display()),
        ));
        return None;
    }
    Some(ImageSource::File {
        path: file,
        content_hash: fnv1a(&bytes),
    })
}

/// A coupon template must say `{name}` and no other placeholder.
fn check_template(template: &str, path: &KeyPath, f: &mut Findings) {
    if !template.contains(NAME_PLACEHOLDER) {
        f.push((
            path.clone(),
            format!("a coupon template must contain {NAME_PLACEHOLDER} (the viewer's name)"),
        ));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            f.push((path.clone(), "unclosed '{' in template".into()));
            return;
        };
        let placeholder = &after[..=close];
        if placeholder != NAME_PLACEHOLDER {
            f.push((
                path.clone(),
                format!("unknown placeholder {placeholder}; only {NAME_PLACEHOLDER} is filled in"),
            ));
        }
        rest = &after[close + 1..];
    }
}

fn campaigns(
    raw: &[Option<RawCampaign>],
    zone_ids: &HashSet<&str>,
    overlay_ids: &HashSet<&str>,
    f: &mut Findings,
) -> Vec<Campaign> {
    let mut seen = HashSet::new();
    let mut campaigns = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let Some(c) = c else { continue };
        let path = KeyPath::default().key("campaigns").index(i);
        check_id(&c.id, &path.key("id"), &mut seen, f);
        for (key, refs, known, what) in [
            ("zones", &c.zones, zone_ids, "zone"),
            ("overlays", &c.overlays, overlay_ids, "overlay"),
        ] {
            if refs.is_empty() {
                f.push((path.key(key), format!("names no {what}")));
            }
            let mut listed = HashSet::new();
            for (j, r) in refs.iter().enumerate() {
                let at = path.key(key).index(j);
                let wildcard = key == "zones" && r == ALL_ZONES;
                if !wildcard && !known.contains(r.as_str()) {
                    f.push((at, format!("unknown {what} {r:?}")));
                } else if !listed.insert(r) {
                    f.push((at, format!("{what} {r:?} is listed twice")));
                }
            }
        }
        let mut instant = |key: &str, text: &Option<String>| {
            text.as_deref().and_then(|t| {
                parse_rfc3339(t)
                    .map_err(|e| f.push((path.key(key), e)))
                    .ok()
            })
        };
        let schedule = Schedule {
            start_unix_secs: instant("start", &c.start),
            end_unix_secs: instant("end", &c.end),
        };
        if let (Some(start), Some(end)) = (schedule.start_unix_secs, schedule.end_unix_secs) {
            if end <= start {
                f.push((
                    path.key("end"),
                    format!(
                        "end {} is not after start {}",
                        c.end.as_deref().unwrap_or_default(),
                        c.start.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let targets = if c.zones.iter().any(|z| z == ALL_ZONES) {
            Targets::All
        } else {
            Targets::Zones(c.zones.clone())
        };
        campaigns.push(Campaign {
            id: c.id.clone(),
            targets,
            overlays: c.overlays.clone(),
            schedule,
        });
    }
    campaigns
}

fn settings(
    raw: RawSettings,
    zone_ids: &HashSet<&str>,
    path: &KeyPath,
    f: &mut Findings,
) -> Option<Settings> {
    if !zone_ids.contains(raw.default_zone.as_str()) {
        f.push((
            path.key("default_zone"),
            format!(
                "default zone {:?} is not one of the [[zones]]",
                raw.default_zone
            ),
        ));
    }
    let names: Vec<String> = raw
        .renditions
        .unwrap_or_else(|| DEFAULT_RENDITIONS.iter().map(|s| s.to_string()).collect());
    if names.is_empty() {
        f.push((
            path.key("renditions"),
            "allow at least one rendition".into(),
        ));
    }
    let mut renditions: Vec<Rendition> = Vec::new();
    for (j, name) in names.iter().enumerate() {
        match Rendition::parse(name) {
            Ok(r) if renditions.iter().any(|have| have.height == r.height) => f.push((
                path.key("renditions").index(j),
                format!("{name:?} is listed twice"),
            )),
            Ok(r) => renditions.push(r),
            Err(e) => f.push((path.key("renditions").index(j), e)),
        }
    }
    renditions.sort();
    let default_rendition = match &raw.default_rendition {
        Some(name) => renditions
            .iter()
            .find(|r| &r.name == name)
            .cloned()
            .or_else(|| {
                f.push((
                    path.key("default_rendition"),
                    format!("{name:?} is not one of the allowed renditions"),
                ));
                None
            }),
        // 720p where allowed, else the smallest: the cheapest sensible start.
        None => renditions
            .iter()
            .find(|r| r.height == 720)
            .or(renditions.first())
            .cloned(),
    };
    if !(1.0..=MAX_ZOOM_LIMIT).contains(&raw.max_zoom) {
        f.push((
            path.key("max_zoom"),
            format!("must be 1..={MAX_ZOOM_LIMIT}, got {}", raw.max_zoom),
        ));
    }
    Some(Settings {
        allow_zone_hints: raw.allow_zone_hints,
        default_zone: raw.default_zone,
        renditions,
        default_rendition: default_rendition?,
        max_zoom: raw.max_zoom as f32,
    })
}

fn decode_png(bytes: &[u8]) -> Result<(), png::DecodingError> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut pixels).map(|_| ())
}

#[cfg(test)]
mod tests {
    use crate::{Campaigns, Format};

    #[test]
    fn integers_read_as_numbers_and_fields_belong_to_their_kind() {
        let text = "[[zones]]\nid = \"default\"\n[[overlays]]\nid = \"a\"\nkind = \"image\"\nimage = \"builtin:live-badge\"\nopacity = 1\n";
        let c = Campaigns::parse(text, Format::Toml, "x.toml").unwrap();
        assert_eq!(c.overlays[0].opacity, 1.0);

        let text = "[[zones]]\nid = \"default\"\n[[overlays]]\nid = \"a\"\nkind = \"image\"\nimage = \"builtin:live-badge\"\ntitle = \"Tea\"\n";
        let e = Campaigns::parse(text, Format::Toml, "x.toml").unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].place, "x.toml:7:9");
        assert!(e[0].message.contains("belongs to kind = \"card\""), "{e:?}");
    }

    #[test]
    fn what_clients_are_told_is_checked_and_part_of_the_fingerprint() {
        let card = |extra: &str| {
            format!("[[zones]]\nid = \"default\"\n[[overlays]]\nid = \"c\"\nkind = \"card\"\ntitle = \"Tea\"\nprice = \"¥1\"\n{extra}")
        };
        let good = Campaigns::parse(
            &card("label = \" Tea \"\nproduct_id = \"tea-1\"\nlink = \"https://shop.example/t\"\n"),
            Format::Toml,
            "x.toml",
        )
        .unwrap();
        let spec = &good.overlays[0];
        assert_eq!(spec.label.as_deref(), Some("Tea"));
        assert_eq!(spec.product_id.as_deref(), Some("tea-1"));
        assert_eq!(spec.link.as_deref(), Some("https://shop.example/t"));
        let plain = Campaigns::parse(&card(""), Format::Toml, "x.toml").unwrap();
        assert_eq!(plain.overlays[0].link, None);
        assert_ne!(plain.overlays[0].fingerprint, spec.fingerprint);

        for (extra, key, says) in [
            (
                "link = \"javascript:alert(1)\"\n",
                "link",
                "not an http(s)://",
            ),
            ("link = \"https://a b\"\n", "link", "spaces"),
            ("label = \"\"\n", "label", "must not be empty"),
            ("product_id = \"a\\u0007\"\n", "product_id", "control"),
        ] {
            let e = Campaigns::parse(&card(extra), Format::Toml, "x.toml").unwrap_err();
            assert_eq!(e.len(), 1, "{extra}: {e:?}");
            assert!(
                e[0].path.ends_with(key) && e[0].message.contains(says),
                "{e:?}"
            );
        }
        let long = format!("product_id = \"{}\"\n", "x".repeat(129));
        assert!(Campaigns::parse(&card(&long), Format::Toml, "x.toml").is_err());
    }
}
