//! Campaigns: which overlays each viewer's rendering carries, decided from where the viewer is
//! and what time it is.
//!
//! In the data flow this is control plane: the node loads a campaign file (TOML or YAML, see
//! `default-campaigns.toml` for every key), keeps it in a [`CampaignStore`] that hot-reloads
//! it, and per viewer asks [`Campaigns::resolve_zone`] where the viewer is (MEC location, then
//! geofence, then hint, then default) and [`Campaigns::render_key_part`] what that zone shows
//! now. Those answers feed the render-group key; nothing here touches the network or a clock:
//! time is an argument.

mod document;
mod geo;
mod located;
mod located_de;
mod model;
mod problem;
mod render_key;
mod resolve;
mod schedule;
mod store;
mod validate;

pub use document::{read_document, DocumentProblem};
pub use geo::{BBox, Geofence, Polygon, Ring};
pub use located::Format;
pub use model::{
    Avoid, Campaign, CardSpec, CouponSpec, ImageSource, OverlayContent, OverlaySpec, Placement,
    Rendition, Settings, TapAction, Targets, Zone, BUILTIN_IMAGES, NAME_PLACEHOLDER,
    REFERENCE_HEIGHT,
};
pub use problem::{Problem, Problems};
pub use render_key::RenderKeyPart;
pub use resolve::{MecFix, ZoneDecision, ZoneInputs, ZoneSource};
pub use schedule::{countdown_text, parse_rfc3339, Schedule};
pub use store::{
    watch_file, CampaignSource, CampaignStore, FileWatch, FileWatcher, ReloadStats, WatchEvent,
};

use serde::Serialize;
use std::path::Path;

/// The embedded default: two zones (Wulin Yintai mall and everyone else), zone hints on.
pub const DEFAULT_CAMPAIGNS_TOML: &str = include_str!("../default-campaigns.toml");

/// A validated campaign file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Campaigns {
    pub settings: Settings,
    /// In file order; the first zone whose geofence holds a point wins.
    pub zones: Vec<Zone>,
    /// In file order, which is also drawing order (later ones on top).
    pub overlays: Vec<OverlaySpec>,
    pub campaigns: Vec<Campaign>,
    /// Where this came from (a path, or `embedded`), for logs.
    pub source: String,
}

impl Campaigns {
    /// Parses and validates a campaign file's text. `place` names it in problems
    /// (`place:line:col`) and, as a path, is what relative PNG paths are relative to.
    /// Returns every problem found, not only the first.
    pub fn parse(text: &str, format: Format, place: &str) -> Result<Campaigns, Vec<Problem>> {
        let doc = located::parse(text, format).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| Problem {
                    place: at(place, e.pos),
                    path: String::new(),
                    message: e.message,
                })
                .collect::<Vec<_>>()
        })?;
        let base_dir = Path::new(place).parent().unwrap_or(Path::new(""));
        validate::build(&doc, base_dir, place).map_err(|findings| {
            let mut located: Vec<(Option<located::Pos>, Problem)> = findings
                .into_iter()
                .map(|(path, message)| {
                    let pos = doc.locate(&path);
                    let problem = Problem {
                        place: at(place, pos),
                        path: path.to_string(),
                        message,
                    };
                    (pos, problem)
                })
                .collect();
            // In file order, as an operator reads them.
            located.sort_by_key(|(pos, _)| pos.map(|p| (p.line, p.col)));
            located.into_iter().map(|(_, p)| p).collect()
        })
    }

    /// Reads and validates a campaign file: YAML for `.yaml`/`.yml`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Campaigns, Vec<Problem>> {
        let (text, place) = read_file(path)?;
        Campaigns::parse(&text, Format::from_path(path), &place)
    }

    /// The embedded default campaigns.
    pub fn embedded() -> Campaigns {
        // The embedded file is part of the binary and covered by a unit test.
        Campaigns::parse(
            DEFAULT_CAMPAIGNS_TOML,
            Format::Toml,
            "embedded:default-campaigns.toml",
        )
        .expect("embedded default campaigns are valid")
    }

    pub fn zone(&self, id: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.id == id)
    }

    pub fn overlay(&self, id: &str) -> Option<&OverlaySpec> {
        self.overlays.iter().find(|o| o.id == id)
    }

    /// A rendition a viewer may have by name (`720p`), or `None` if the operator does not
    /// allow it.
    pub fn allowed_rendition(&self, name: &str) -> Option<&Rendition> {
        self.settings.renditions.iter().find(|r| r.name == name)
    }
}

fn at(place: &str, pos: Option<located::Pos>) -> String {
    match pos {
        Some(p) => format!("{place}:{}:{}", p.line, p.col),
        None => place.to_string(),
    }
}

/// The text of a campaign file and its place for problems, or the problem reading it.
pub(crate) fn read_file(path: &Path) -> Result<(String, String), Vec<Problem>> {
    let place = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, place)),
        Err(e) => Err(vec![Problem {
            place,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }]),
    }
}

/// Whether a file looks like a campaign file rather than a node config: it has a top-level
/// `zones` or `campaigns` section. Reads the text only, so it answers even for a file with
/// syntax errors (whose problems the campaign parser then reports).
pub fn looks_like_campaigns(text: &str) -> bool {
    text.lines().any(|line| {
        // Top level only: no indentation; trailing comments do not count.
        let line = line.split('#').next().unwrap_or_default().trim_end();
        line.starts_with("[[zones]]")
            || line.starts_with("[[campaigns]]")
            || line.starts_with("zones:")
            || line.starts_with("campaigns:")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_files_are_told_from_node_configs() {
        assert!(looks_like_campaigns(DEFAULT_CAMPAIGNS_TOML));
        assert!(looks_like_campaigns(
            "settings: {}\nzones:   # where\n  - id: a\n"
        ));
        assert!(looks_like_campaigns("campaigns: []\n"));
        assert!(!looks_like_campaigns("[[overlays]]\nname = \"zones:\"\n"));
        assert!(!looks_like_campaigns(
            "overlays:\n  - name: a\n    zones: x\n"
        ));
        assert!(!looks_like_campaigns("# [[zones]] would go here\n"));
    }
}
