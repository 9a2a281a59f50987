//! Shaping (cosmic-text with HarfRust) and glyph rasterisation (swash) for the cards. Shaped
//! layouts and rasterised glyphs are cached: a card re-rendered each second for its countdown
//! reshapes only the changed line and blits glyphs it has already rasterised.

use std::collections::HashMap;
use std::sync::Arc;

use cosmic_text::{
    Attrs, Buffer, Ellipsize, EllipsizeHeightLimit, Family, FontSystem, LayoutGlyph, Metrics,
    Shaping, SwashCache, SwashContent, Weight, Wrap,
};

use crate::canvas::{Canvas, Rgba8};
use crate::fonts::LoadedFonts;

/// Shaped layouts kept; past this the cache starts over. Countdown lines change every second,
/// so without a bound the cache would grow for as long as a campaign runs.
const SHAPED_CACHE_ENTRIES: usize = 512;
/// Rasterised glyphs kept (one per glyph, size and subpixel offset); bounded for the same
/// reason, since personal coupons bring new names and so new CJK glyphs.
const GLYPH_CACHE_ENTRIES: usize = 8192;
/// Longest text shaped, in chars: campaign and viewer text is outside input, and a card shows
/// far less than this anyway.
const MAX_TEXT_CHARS: usize = 400;

/// How one block of text is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextStyle {
    pub size_px: f32,
    pub line_height: f32,
    pub bold: bool,
    /// Width past which lines wrap; `None` keeps one line.
    pub max_width_px: Option<f32>,
    /// Lines shown before the rest is cut with an ellipsis.
    pub max_lines: usize,
}

/// One laid-out line: glyphs positioned relative to the block's top-left.
pub struct ShapedLine {
    pub glyphs: Vec<LayoutGlyph>,
    pub baseline_y: f32,
    pub width: f32,
}

/// A shaped block of text and its extent.
pub struct ShapedText {
    pub lines: Vec<ShapedLine>,
    pub width: f32,
    pub height: f32,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ShapeKey {
    text: String,
    size_bits: u32,
    line_height_bits: u32,
    bold: bool,
    max_width_bits: Option<u32>,
    max_lines: usize,
}

pub struct TextStack {
    font_system: FontSystem,
    glyphs: SwashCache,
    family: String,
    shaped: HashMap<ShapeKey, Arc<ShapedText>>,
}

impl TextStack {
    pub fn new(fonts: LoadedFonts) -> Self {
        // The locale only orders fallback families; the cards' own font comes first anyway.
        let font_system = FontSystem::new_with_locale_and_db("zh-CN".into(), fonts.database);
        Self {
            font_system,
            glyphs: SwashCache::new(),
            family: fonts.family,
            shaped: HashMap::new(),
        }
    }

    pub fn family(&self) -> &str {
        &self.family
    }

    /// Shapes `text` (control characters become spaces, overlong text is cut), from the cache
    /// when this exact text and style were shaped before.
    pub fn shape(&mut self, text: &str, style: TextStyle) -> Arc<ShapedText> {
        let text = sanitise(text);
        let key = ShapeKey {
            text,
            size_bits: style.size_px.to_bits(),
            line_height_bits: style.line_height.to_bits(),
            bold: style.bold,
            max_width_bits: style.max_width_px.map(f32::to_bits),
            max_lines: style.max_lines,
        };
        if let Some(shaped) = self.shaped.get(&key) {
            return Arc::clone(shaped);
        }
        if self.shaped.len() >= SHAPED_CACHE_ENTRIES {
            self.shaped.clear();
        }
        let shaped = Arc::new(self.shape_uncached(&key.text, style));
        self.shaped.insert(key, Arc::clone(&shaped));
        shaped
    }

    fn shape_uncached(&mut self, text: &str, style: TextStyle) -> ShapedText {
        let metrics = Metrics::new(style.size_px, style.size_px * style.line_height);
        let mut buffer = Buffer::new(&mut self.font_system, metrics);
        let weight = if style.bold {
            Weight::BOLD
        } else {
            Weight::NORMAL
        };
        let attrs = Attrs::new()
            .family(Family::Name(&self.family))
            .weight(weight);
        buffer.set_wrap(if style.max_width_px.is_some() {
            Wrap::WordOrGlyph
        } else {
            Wrap::None
        });
        if style.max_width_px.is_some() {
            buffer.set_ellipsize(Ellipsize::End(EllipsizeHeightLimit::Lines(
                style.max_lines.max(1),
            )));
        }
        buffer.set_size(style.max_width_px, None);
        buffer.set_text(text, &attrs, Shaping::Advanced, None);
        buffer.shape_until_scroll(&mut self.font_system, false);
        let lines: Vec<ShapedLine> = buffer
            .layout_runs()
            .map(|run| ShapedLine {
                glyphs: run.glyphs.to_vec(),
                baseline_y: run.line_y,
                width: run.line_w,
            })
            .collect();
        let width = lines.iter().map(|line| line.width).fold(0.0, f32::max);
        let height = lines.len() as f32 * metrics.line_height;
        ShapedText {
            lines,
            width,
            height,
        }
    }

    /// Draws a shaped block with its top-left at (x, y).
    pub fn draw(&mut self, canvas: &mut Canvas, shaped: &ShapedText, x: f32, y: f32, color: Rgba8) {
        if self.glyphs.image_cache.len() >= GLYPH_CACHE_ENTRIES {
            self.glyphs.image_cache.clear();
        }
        for line in &shaped.lines {
            for glyph in &line.glyphs {
                let physical = glyph.physical((x, y + line.baseline_y), 1.0);
                let Some(image) = self
                    .glyphs
                    .get_image(&mut self.font_system, physical.cache_key)
                else {
                    continue;
                };
                let left = physical.x + image.placement.left;
                let top = physical.y - image.placement.top;
                match image.content {
                    SwashContent::Mask => {
                        canvas.blend_mask(left, top, image.placement.width, &image.data, color)
                    }
                    SwashContent::Color => {
                        canvas.blend_rgba(left, top, image.placement.width, &image.data)
                    }
                    // Only asked for with a subpixel format, which the cards never request.
                    SwashContent::SubpixelMask => {}
                }
            }
        }
    }

    /// The characters of `text` that no loaded font has a glyph for (they would draw as the
    /// empty "notdef" box), in order of appearance, each once.
    pub fn unsupported_chars(&mut self, text: &str) -> Vec<char> {
        let style = TextStyle {
            size_px: 32.0,
            line_height: 1.2,
            bold: false,
            max_width_px: None,
            max_lines: 1,
        };
        let sanitised = sanitise(text);
        let shaped = self.shape(&sanitised, style);
        let mut missing = Vec::new();
        for glyph in shaped.lines.iter().flat_map(|line| &line.glyphs) {
            if glyph.glyph_id != 0 {
                continue;
            }
            for c in sanitised[glyph.start..glyph.end].chars() {
                if !missing.contains(&c) {
                    missing.push(c);
                }
            }
        }
        missing
    }
}

/// Text as the cards set it: one paragraph (control characters, newlines included, become
/// spaces) of at most `MAX_TEXT_CHARS`.
fn sanitise(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fonts::{self, CardFonts};

    fn system_stack() -> TextStack {
        let fonts =
            CardFonts::noto_cjk_system().expect("fonts-noto-cjk is installed by setup-system");
        TextStack::new(fonts::load(&fonts).expect("Noto Sans CJK loads"))
    }

    #[test]
    fn chinese_shapes_to_real_glyphs() {
        let mut stack = system_stack();
        for bold in [false, true] {
            let style = TextStyle {
                size_px: 40.0,
                line_height: 1.3,
                bold,
                max_width_px: None,
                max_lines: 1,
            };
            let shaped = stack.shape("武林银泰 限时特价", style);
            assert_eq!(shaped.lines.len(), 1);
            let glyphs = &shaped.lines[0].glyphs;
            // Eight ideographs and one space, none of them notdef (glyph 0).
            assert_eq!(glyphs.len(), 9);
            assert!(
                glyphs.iter().all(|g| g.glyph_id != 0),
                "{:?}",
                glyphs.iter().map(|g| g.glyph_id).collect::<Vec<_>>()
            );
            // Ideographs are full-width: each about one em across.
            assert!(shaped.width > 8.0 * 40.0 * 0.9, "width {}", shaped.width);
        }
    }

    #[test]
    fn shaping_is_cached_per_text_and_style() {
        let mut stack = system_stack();
        let style = TextStyle {
            size_px: 30.0,
            line_height: 1.3,
            bold: false,
            max_width_px: Some(300.0),
            max_lines: 2,
        };
        let first = stack.shape("剩余 12:34", style);
        let again = stack.shape("剩余 12:34", style);
        assert!(Arc::ptr_eq(&first, &again));
        let bolder = stack.shape(
            "剩余 12:34",
            TextStyle {
                bold: true,
                ..style
            },
        );
        assert!(!Arc::ptr_eq(&first, &bolder));
    }

    #[test]
    fn long_text_wraps_then_ellipsizes() {
        let mut stack = system_stack();
        let style = TextStyle {
            size_px: 40.0,
            line_height: 1.3,
            bold: true,
            max_width_px: Some(400.0),
            max_lines: 2,
        };
        let shaped = stack.shape(&"杭州丝绸".repeat(20), style);
        assert_eq!(shaped.lines.len(), 2);
        assert!(shaped.width <= 400.5, "width {}", shaped.width);
    }

    #[test]
    fn sanitise_makes_one_bounded_paragraph() {
        assert_eq!(sanitise("a\nb\tc"), "a b c");
        assert_eq!(sanitise(&"长".repeat(1000)).chars().count(), MAX_TEXT_CHARS);
    }
}
