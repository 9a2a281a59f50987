//! Artwork shipped inside the binary, so the embedded default config serves from anywhere.

/// The names campaigns may use as `builtin:NAME`: the campaign parser's list, drawn here.
pub const BUILTIN_OVERLAYS: &[&str] = edge_campaign::BUILTIN_IMAGES;

/// The PNG bytes of a built-in overlay (drawn by `scripts/make-overlays.py`).
pub fn builtin_overlay(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "live-badge" => include_bytes!("../assets/overlays/live-badge.png"),
        "product-card" => include_bytes!("../assets/overlays/product-card.png"),
        "yintai-mall-ad" => include_bytes!("../assets/overlays/yintai-mall-ad.png"),
        "default-ad" => include_bytes!("../assets/overlays/default-ad.png"),
        "back-soon" => include_bytes!("../assets/overlays/back-soon.png"),
        _ => return None,
    })
}

/// Reads an overlay's PNG bytes from `builtin:NAME` or a file path.
pub fn overlay_png(image: &str) -> anyhow::Result<Vec<u8>> {
    match image.strip_prefix("builtin:") {
        Some(name) => builtin_overlay(name)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| anyhow::anyhow!("no built-in overlay {name:?}")),
        None => {
            std::fs::read(image).map_err(|e| anyhow::anyhow!("cannot read overlay {image}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_the_campaigns_accept_is_drawn_here() {
        for name in BUILTIN_OVERLAYS {
            let png = builtin_overlay(name).unwrap_or_else(|| panic!("{name} has no art"));
            edge_compose::decode_png_rgba(png).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
