//! `GET/PUT /api/v1/campaigns`: the operator's view of the campaign store.
//!
//! A PUT is validated like a file edit and applied the same way (next frame); an invalid body
//! changes nothing and comes back with every problem. A PUT lives in memory: the campaigns
//! file (often a read-only ConfigMap mount) stays the source of truth for the next change to
//! it and for restarts.

use crate::admin::CampaignAdmin;
use edge_campaign::{CampaignStore, Format, DEFAULT_CAMPAIGNS_TOML};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct CampaignApi {
    store: Arc<CampaignStore>,
    file: Option<PathBuf>,
    /// The text last applied through the API, with its media type and generation.
    applied: Mutex<Option<(String, String, u64)>>,
}

impl CampaignApi {
    pub fn new(store: Arc<CampaignStore>, file: Option<PathBuf>) -> Self {
        Self {
            store,
            file,
            applied: Mutex::new(None),
        }
    }
}

fn media_type_of(format: Format) -> &'static str {
    match format {
        Format::Toml => "application/toml",
        Format::Yaml => "application/yaml",
    }
}

impl CampaignAdmin for CampaignApi {
    fn current(&self) -> (String, String, u64) {
        let generation = self.store.generation();
        if let Some((text, media, applied)) = self
            .applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            if applied == generation {
                return (text, media, generation);
            }
        }
        match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .unwrap_or_else(|e| format!("# cannot read {}: {e}\n", path.display()));
                (
                    text,
                    media_type_of(Format::from_path(path)).into(),
                    generation,
                )
            }
            None => (
                DEFAULT_CAMPAIGNS_TOML.to_string(),
                "application/toml".into(),
                generation,
            ),
        }
    }

    fn replace(&self, body: &str, content_type: &str) -> Result<u64, Vec<String>> {
        // JSON is a subset of YAML: one parser, one set of located problems.
        let format = if content_type.contains("toml") {
            Format::Toml
        } else {
            Format::Yaml
        };
        let place = "PUT /api/v1/campaigns";
        match self.store.replace_from_text(body, format, place) {
            Ok(generation) => {
                *self.applied.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((body.to_string(), content_type.to_string(), generation));
                tracing::info!(generation, "campaigns replaced through the admin API");
                Ok(generation)
            }
            // The admin handler counts applied and rejected replacements.
            Err(problems) => Err(problems.iter().map(|p| p.to_string()).collect()),
        }
    }
}
