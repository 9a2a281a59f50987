//! `edge-node check-config` for campaign files: recognises one and prints every problem with
//! its `file:line:col`, or a one-line summary of what the file sets up.

use anyhow::{bail, Result};
use edge_campaign::Campaigns;
use std::path::Path;

/// Whether `path` holds campaigns (a top-level `zones` or `campaigns` section) rather than a
/// node config. An unreadable file is not recognised; the node-config check then reports it.
pub fn is_campaign_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| edge_campaign::looks_like_campaigns(&text))
}

/// Checks a campaign file: prints each problem on its own line and fails with their count.
pub fn run(path: &Path) -> Result<()> {
    match Campaigns::load(path) {
        Ok(campaigns) => {
            println!("{}", summary(path, &campaigns));
            Ok(())
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            bail!("{}: {} problem(s)", path.display(), problems.len())
        }
    }
}

fn summary(path: &Path, c: &Campaigns) -> String {
    let renditions: Vec<&str> = c
        .settings
        .renditions
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    format!(
        "{}: ok (campaigns: {} zones, {} overlays, {} campaigns; zone hints {}; default zone {}; renditions {})",
        path.display(),
        c.zones.len(),
        c.overlays.len(),
        c.campaigns.len(),
        if c.settings.allow_zone_hints {
            "allowed"
        } else {
            "off"
        },
        c.settings.default_zone,
        renditions.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_builtins_are_the_node_builtins() {
        let mut campaign: Vec<&str> = edge_campaign::BUILTIN_IMAGES.to_vec();
        let mut node: Vec<&str> = edge_engine::assets::BUILTIN_OVERLAYS.to_vec();
        campaign.sort_unstable();
        node.sort_unstable();
        assert_eq!(campaign, node);
        for name in edge_campaign::BUILTIN_IMAGES {
            assert!(
                edge_engine::assets::builtin_overlay(name).is_some(),
                "{name}"
            );
        }
    }

    #[test]
    fn recognises_campaign_files_but_not_node_configs() {
        let dir =
            std::env::temp_dir().join(format!("edge-node-campaign-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let campaigns = dir.join("campaigns.toml");
        std::fs::write(&campaigns, edge_campaign::DEFAULT_CAMPAIGNS_TOML).unwrap();
        assert!(is_campaign_file(&campaigns));
        let node = dir.join("node.toml");
        std::fs::write(&node, crate::config::DEFAULT_CONFIG_TOML).unwrap();
        assert!(
            !is_campaign_file(&node),
            "node configs have [[overlays]] but no zones"
        );
        assert!(!is_campaign_file(&dir.join("missing.toml")));

        run(&campaigns).unwrap();
        let c = Campaigns::load(&campaigns).unwrap();
        let line = summary(&campaigns, &c);
        assert!(line.ends_with("ok (campaigns: 2 zones, 5 overlays, 4 campaigns; zone hints allowed; default zone default; renditions 360p, 720p, 1080p)"), "{line}");

        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, "zones:\n  - id: a\n    colour: red\ncampaigns:\n  - id: c\n    zones: [b]\n    overlays: [x]\n").unwrap();
        let e = run(&broken).unwrap_err().to_string();
        assert!(e.ends_with("broken.yaml: 4 problem(s)"), "{e}");
    }
}
