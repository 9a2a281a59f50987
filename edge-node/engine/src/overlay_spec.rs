//! Image overlays the node itself adds (an operator's site badge, the slate's card), made into
//! the same specs as campaign overlays.

use anyhow::Result;
use edge_campaign::{Campaigns, Format, OverlaySpec};
use edge_core::placement::Anchor;

/// An image overlay built through the campaign parser, so it gets the same checks and
/// fingerprints as a campaign's. `image` is a PNG path or `builtin:NAME`.
pub fn image_overlay(
    id: &str,
    image: &str,
    opacity: f32,
    anchor: Anchor,
    margin: [i32; 2],
) -> Result<OverlaySpec> {
    let anchor = serde_json::to_value(anchor)?;
    let text = format!(
        "[[zones]]\nid = \"default\"\n[[overlays]]\nid = {id:?}\nkind = \"image\"\nimage = {image:?}\nopacity = {opacity}\nplacement = {{ anchor = {:?}, margin = [{}, {}] }}\n",
        anchor.as_str().unwrap_or("top-left"),
        margin[0],
        margin[1]
    );
    let parsed = Campaigns::parse(&text, Format::Toml, "overlays").map_err(|problems| {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("overlay {id:?}: {}", problems.join("; "))
    })?;
    parsed
        .overlays
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("overlay {id:?}: nothing parsed"))
}

/// The card drawn over the slate, centred.
pub fn slate_card() -> Result<OverlaySpec> {
    let mut card = image_overlay("slate", "builtin:back-soon", 1.0, Anchor::Center, [0, 0])?;
    // What the art says, for screen readers (the overlays track carries it).
    card.label = Some("Back soon 马上回来: the show will continue here".into());
    Ok(card)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slate_card_is_the_built_in_art_centred() {
        let card = slate_card().unwrap();
        assert_eq!(card.id, "slate");
        assert_eq!(card.placement.anchor, Anchor::Center);
        assert!(card
            .label
            .as_deref()
            .is_some_and(|l| l.contains("Back soon")));
    }

    #[test]
    fn a_bad_image_is_an_error_naming_the_overlay() {
        let e = image_overlay("badge", "builtin:nope", 1.0, Anchor::TopLeft, [0, 0]).unwrap_err();
        assert!(e.to_string().contains("badge"), "{e}");
    }
}
