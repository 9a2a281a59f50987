//! Zone presence from the MEC platform: the node subscribes to every zone its campaigns map to
//! MEC zone ids, and moves viewers whose UE walks in or out (ETSI GS MEC 013 zonal traffic).

use crate::routing::apply_mec_fix;
use crate::viewers::ViewerDirectory;
use anyhow::{Context, Result};
use edge_campaign::{CampaignStore, MecFix, ZoneSource};
use edge_location::{
    LocationClient, LocationConfig, NotificationListener, UserEventType, ZoneEvent,
};
use edge_telemetry::{MecOutcome, Telemetry};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The ETSI MEC 013 Location API of the site's MEC platform (optional).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MecConfig {
    /// e.g. `http://mec-platform:8080`; none = no MEC lookups.
    pub base_url: Option<String>,
    /// Per-request limit; a slower platform is ignored for that viewer (fallback, counted).
    pub timeout_ms: u64,
    /// Where the zone-presence notification listener binds (e.g. `0.0.0.0:9091`).
    pub notify_listen: Option<String>,
    /// The callback base URL the platform reaches the listener at, when it differs.
    pub notify_base_url: Option<String>,
}

impl Default for MecConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout_ms: 300,
            notify_listen: None,
            notify_base_url: None,
        }
    }
}

pub fn client(config: &MecConfig) -> Result<Option<LocationClient>> {
    let Some(base) = &config.base_url else {
        return Ok(None);
    };
    let url = url::Url::parse(base).with_context(|| format!("mec.base_url {base:?}"))?;
    let mut location = LocationConfig::new(url);
    location.timeout = Duration::from_millis(config.timeout_ms);
    Ok(Some(
        LocationClient::new(location).context("MEC Location API client")?,
    ))
}

/// Binds the notification listener, subscribes to every MEC zone the campaigns know, and
/// applies each event to the viewers at that UE address. Runs until the runtime stops.
pub async fn follow_zone_presence(
    config: MecConfig,
    client: Arc<LocationClient>,
    campaigns: Arc<CampaignStore>,
    directory: Arc<ViewerDirectory>,
    telemetry: Arc<Telemetry>,
) -> Result<()> {
    let Some(listen) = &config.notify_listen else {
        return Ok(());
    };
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("mec.notify_listen {listen:?}"))?;
    let (listener, mut events) = match &config.notify_base_url {
        Some(base) => {
            NotificationListener::bind_with_callback_base(
                addr,
                url::Url::parse(base).with_context(|| format!("mec.notify_base_url {base:?}"))?,
            )
            .await
        }
        None => NotificationListener::bind(addr).await,
    }
    .with_context(|| format!("binding the MEC notification listener on {addr}"))?;
    let callback = listener.callback_url().clone();
    let zones: Vec<String> = campaigns
        .current()
        .zones
        .iter()
        .flat_map(|z| z.mec_zone_ids.clone())
        .collect();
    for zone in &zones {
        match client.subscribe_zone(zone, &callback).await {
            Ok(sub) => {
                telemetry.mec_request(MecOutcome::Ok);
                tracing::info!(zone = %zone, resource = %sub.resource_url, "subscribed to MEC zone presence");
            }
            Err(e) => {
                telemetry.mec_request(MecOutcome::Error);
                tracing::warn!(zone = %zone, error = %e, "MEC zone presence subscription failed; viewers keep their URL zone");
            }
        }
    }
    while let Some(event) = events.recv().await {
        apply_event(&event, &campaigns, &directory);
    }
    drop(listener);
    Ok(())
}

fn apply_event(event: &ZoneEvent, campaigns: &CampaignStore, directory: &ViewerDirectory) {
    let Some(ip) = event.ue_ip() else {
        return tracing::info!(address = %event.address, "zone event for a non-IP address ignored");
    };
    let campaigns = campaigns.current();
    for session in directory.sessions_at(ip.to_canonical()) {
        match event.event {
            UserEventType::Entering | UserEventType::Transferring => {
                let fix = MecFix {
                    zone_id: Some(event.zone_id.clone()),
                    cell_id: Some(event.current_access_point_id.clone()),
                };
                apply_mec_fix(directory, &campaigns, session, &fix);
            }
            UserEventType::Leaving => {
                let left = campaigns
                    .zone_for_mec(Some(&event.zone_id), None)
                    .map(|z| z.id.clone());
                let default = campaigns.settings.default_zone.clone();
                directory.update(session, |viewer| {
                    if Some(&viewer.zone) == left.as_ref() && viewer.zone_source == ZoneSource::Mec {
                        tracing::info!(session, from = %viewer.zone, to = %default, "viewer left its MEC zone");
                        viewer.zone = default.clone();
                        viewer.zone_source = ZoneSource::Default;
                    }
                });
            }
        }
    }
}
