//! What a zone shows at a given time, and its share of the render-group key.

use crate::model::{fnv1a, OverlaySpec};
use crate::Campaigns;
pub use edge_core::rendering::RenderKeyPart;

impl Campaigns {
    /// The overlays shown in `zone_id` at `now_unix_secs`: from every campaign that targets
    /// the zone and is within its schedule, each once, in `[[overlays]]` file order (the
    /// drawing order). Personal overlays (coupons) are included; see
    /// [`OverlaySpec::is_personal`].
    pub fn active_overlays(&self, zone_id: &str, now_unix_secs: i64) -> Vec<&OverlaySpec> {
        let live: Vec<&str> = self
            .campaigns
            .iter()
            .filter(|c| c.targets.includes(zone_id) && c.schedule.is_active(now_unix_secs))
            .flat_map(|c| c.overlays.iter().map(String::as_str))
            .collect();
        self.overlays
            .iter()
            .filter(|o| live.contains(&o.id.as_str()))
            .collect()
    }

    /// See [`RenderKeyPart`].
    pub fn render_key_part(&self, zone_id: &str, now_unix_secs: i64) -> RenderKeyPart {
        let mut active: Vec<&OverlaySpec> = self.active_overlays(zone_id, now_unix_secs);
        active.sort_by(|a, b| a.id.cmp(&b.id));
        let digest: Vec<u8> = active
            .iter()
            .flat_map(|o| o.fingerprint.to_le_bytes())
            .collect();
        RenderKeyPart {
            overlay_ids: active.iter().map(|o| o.id.clone()).collect(),
            fingerprint: fnv1a(&digest),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Campaigns, Format};
    use proptest::prelude::*;

    const T0: i64 = 1_794_326_400; // 2026-11-11T00:00:00+08:00

    fn sale(price: &str) -> Campaigns {
        let text = format!(
            r#"
[[zones]]
id = "mall"
[[zones]]
id = "default"
[[zones]]
id = "annex"

[[overlays]]
id = "badge"
kind = "image"
image = "builtin:live-badge"
[[overlays]]
id = "card"
kind = "card"
title = "龙井茶礼盒"
price = "{price}"
[[overlays]]
id = "ad"
kind = "image"
image = "builtin:yintai-mall-ad"

[[campaigns]]
id = "sale"
zones = ["mall", "annex"]
overlays = ["card", "ad"]
start = 2026-11-11T00:00:00+08:00
end = "2026-11-12T00:00:00+08:00"

[[campaigns]]
id = "badge"
zones = ["*"]
overlays = ["badge"]
"#
        );
        Campaigns::parse(&text, Format::Toml, "sale.toml").unwrap()
    }

    fn ids(c: &Campaigns, zone: &str, now: i64) -> Vec<String> {
        c.active_overlays(zone, now)
            .iter()
            .map(|o| o.id.clone())
            .collect()
    }

    #[test]
    fn schedules_switch_overlays_on_and_off() {
        let c = sale("¥168");
        assert_eq!(ids(&c, "mall", T0 - 1), ["badge"]);
        assert_eq!(ids(&c, "mall", T0), ["badge", "card", "ad"], "file order");
        assert_eq!(ids(&c, "mall", T0 + 86_399), ["badge", "card", "ad"]);
        assert_eq!(ids(&c, "mall", T0 + 86_400), ["badge"], "end is exclusive");
        assert_eq!(ids(&c, "default", T0), ["badge"]);
    }

    #[test]
    fn key_parts_are_shared_by_equal_renderings_and_follow_content() {
        let c = sale("¥168");
        let mall = c.render_key_part("mall", T0);
        assert_eq!(mall.overlay_ids, ["ad", "badge", "card"], "sorted");
        assert_eq!(
            mall,
            c.render_key_part("annex", T0),
            "same overlays, same part"
        );
        assert_ne!(mall, c.render_key_part("default", T0));
        assert_ne!(mall, c.render_key_part("mall", T0 + 86_400));
        let repriced = sale("¥158").render_key_part("mall", T0);
        assert_eq!(repriced.overlay_ids, mall.overlay_ids);
        assert_ne!(
            repriced.fingerprint, mall.fingerprint,
            "a new price is a new rendering"
        );
        assert_eq!(
            sale("¥168").render_key_part("mall", T0),
            mall,
            "stable across parses"
        );
    }

    proptest! {
        #[test]
        fn active_overlays_are_unique_and_in_file_order(now in T0 - 200_000..T0 + 200_000, zone in "mall|default|annex|elsewhere") {
            let c = sale("¥168");
            let active = c.active_overlays(&zone, now);
            let positions: Vec<usize> = active
                .iter()
                .map(|o| c.overlays.iter().position(|x| x.id == o.id).unwrap())
                .collect();
            prop_assert!(positions.windows(2).all(|w| w[0] < w[1]));
            let part = c.render_key_part(&zone, now);
            prop_assert_eq!(part.overlay_ids.len(), active.len());
            prop_assert!(part.overlay_ids.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
