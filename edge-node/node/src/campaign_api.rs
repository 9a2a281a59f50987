//! `GET/PUT /api/v1/campaigns`: the operator's view of the campaign store.
//!
//! A PUT is validated like a file edit and applied the same way (next frame); an invalid body
//! changes nothing and comes back with every problem. A PUT lives in memory: the campaigns
//! file (often a read-only ConfigMap mount) stays the source of truth for the next change to
//! it and for restarts.

use crate::admin::CampaignAdmin;
use edge_campaign::{CampaignStore, Format, DEFAULT_CAMPAIGNS_TOML};
use std::sync::{Arc, Mutex};

pub struct CampaignApi {
    store: Arc<CampaignStore>,
    /// The media type of the last set applied through the API, with its generation (JSON
    /// comes back as JSON, though it is kept as the YAML it also is).
    applied_as: Mutex<Option<(String, u64)>>,
}

impl CampaignApi {
    pub fn new(store: Arc<CampaignStore>) -> Self {
        Self {
            store,
            applied_as: Mutex::new(None),
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
    /// The text of the generation in force: a file edit that was refused, or a file changed
    /// since, does not show here (the store keeps the text it applied).
    fn current(&self) -> (String, String, u64) {
        let Some((source, generation)) = self.store.source() else {
            // Nothing read from text: the embedded default.
            let generation = self.store.generation();
            return (
                DEFAULT_CAMPAIGNS_TOML.to_string(),
                "application/toml".into(),
                generation,
            );
        };
        let media_type = self
            .applied_as
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(_, applied)| *applied == generation)
            .map_or_else(|| media_type_of(source.format).to_string(), |(m, _)| m);
        (source.text.to_string(), media_type, generation)
    }

    fn reload_counts(&self) -> (u64, u64) {
        self.store.reload_counts()
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
                *self.applied_as.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((content_type.to_string(), generation));
                tracing::info!(generation, "campaigns replaced through the admin API");
                Ok(generation)
            }
            // The store counts refusals, from files and from here alike.
            Err(problems) => Err(problems.iter().map(|p| p.to_string()).collect()),
        }
    }
}
