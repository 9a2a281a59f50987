//! Cards rendered with the real text stack and the system's Noto Sans CJK (installed by
//! scripts/setup-system.sh), checked on their pixels.

use std::path::PathBuf;
use std::time::Duration;

use edge_cards::{CardError, CardFonts, CardRenderer, Coupon, ProductCard, RgbaImage};

fn renderer() -> CardRenderer {
    let fonts = CardFonts::noto_cjk_system().expect("fonts-noto-cjk is installed by setup-system");
    CardRenderer::new(fonts).expect("Noto Sans CJK loads")
}

fn sale_card() -> ProductCard {
    ProductCard {
        title: "武林银泰 限时特价".into(),
        price: "¥199".into(),
        countdown: Some(Duration::from_secs(12 * 60 + 34)),
        expanded: false,
        detail: Some("真丝围巾 · 杭州丝绸 · 今日下单包邮".into()),
    }
}

/// The bounding box of the opaque panel: pixels at least `min_alpha` opaque.
fn opaque_box(image: &RgbaImage, min_alpha: u8) -> (u32, u32, u32, u32) {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..image.height {
        for x in 0..image.width {
            if image.pixel(x, y).unwrap()[3] >= min_alpha {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    (x0, y0, x1, y1)
}

/// Pixels inside `bounds` whose colour is within `tolerance` of `rgb` on every channel and
/// which are nearly opaque.
fn count_near(
    image: &RgbaImage,
    bounds: (u32, u32, u32, u32),
    rgb: [u8; 3],
    tolerance: u8,
) -> usize {
    let (x0, y0, x1, y1) = bounds;
    (y0..=y1)
        .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = image.pixel(x, y).unwrap();
            p[3] >= 230 && (0..3).all(|c| p[c].abs_diff(rgb[c]) <= tolerance)
        })
        .count()
}

#[test]
fn chinese_title_draws_real_glyphs_inside_the_panel() {
    let mut renderer = renderer();
    assert!(
        renderer.font_family().contains("CJK"),
        "{}",
        renderer.font_family()
    );
    assert_eq!(
        renderer.unsupported_chars("武林银泰 限时特价 ¥199 剩余 点击购买"),
        Vec::<char>::new()
    );

    let image = renderer.product_card(&sale_card(), 1080).unwrap();
    assert_eq!(
        image.pixels.len(),
        image.width as usize * image.height as usize * 4
    );
    let panel = opaque_box(&image, 240);
    assert!(
        panel.0 > 0 && panel.1 > 0,
        "shadow margin around the panel: {panel:?}"
    );
    // Title ink (near #1C1C1E) and price ink (the accent red) inside the panel.
    let title_ink = count_near(&image, panel, [28, 28, 30], 40);
    let price_ink = count_near(&image, panel, [228, 57, 60], 30);
    assert!(title_ink > 500, "title pixels: {title_ink}");
    assert!(price_ink > 500, "price pixels: {price_ink}");
    // Ink is strokes, not a filled box: most of the panel stays the panel colour.
    let panel_area = ((panel.2 - panel.0) * (panel.3 - panel.1)) as usize;
    assert!(title_ink < panel_area / 4, "{title_ink} of {panel_area}");
}

#[test]
fn text_the_fonts_cannot_draw_is_reported() {
    let mut renderer = renderer();
    // Egyptian hieroglyphs and a private-use code point are in no CJK font.
    assert_eq!(
        renderer.unsupported_chars("价𓀀格\u{E000}"),
        vec!['𓀀', '\u{E000}']
    );
}

#[test]
fn sides_are_even_at_every_rendition() {
    let mut renderer = renderer();
    for height in [360, 480, 720, 1080, 1440, 2160] {
        for expanded in [false, true] {
            let card = ProductCard {
                expanded,
                ..sale_card()
            };
            let image = renderer.product_card(&card, height).unwrap();
            assert_eq!(
                (image.width % 2, image.height % 2),
                (0, 0),
                "{height}p {expanded}"
            );
        }
        let coupon = renderer
            .coupon(
                &Coupon {
                    text: "李雷, 20% off today".into(),
                },
                height,
            )
            .unwrap();
        assert_eq!(
            (coupon.width % 2, coupon.height % 2),
            (0, 0),
            "{height}p coupon"
        );
    }
}

/// Shaped text does not grow exactly with its font size; the cards are sized from their
/// 720-line layout, so each covers the same share of every rendition to a pixel.
#[test]
fn cards_cover_the_same_share_of_every_rendition() {
    let mut renderer = renderer();
    let coupon = Coupon {
        text: "李雷, 20% off today".into(),
    };
    let mut sizes = |height: u32, expanded: bool| {
        let card = renderer
            .product_card(
                &ProductCard {
                    expanded,
                    ..sale_card()
                },
                height,
            )
            .unwrap();
        let ticket = renderer.coupon(&coupon, height).unwrap();
        [(card.width, card.height), (ticket.width, ticket.height)]
    };
    for expanded in [false, true] {
        let reference = sizes(720, expanded);
        for height in [360, 480, 1080, 1440, 2160] {
            for (at, at_720) in sizes(height, expanded).iter().zip(reference) {
                let expected = |side: u32| f64::from(side) * f64::from(height) / 720.0;
                assert!(
                    (f64::from(at.0) - expected(at_720.0)).abs() <= 1.0
                        && (f64::from(at.1) - expected(at_720.1)).abs() <= 1.0,
                    "{height}p (expanded {expanded}): {at:?}, {at_720:?} at 720p"
                );
            }
        }
    }
}

#[test]
fn card_scales_with_output_height() {
    let mut renderer = renderer();
    let small = renderer.product_card(&sale_card(), 720).unwrap();
    let large = renderer.product_card(&sale_card(), 1080).unwrap();
    let ratio = large.height as f32 / small.height as f32;
    assert!(
        (1.4..1.6).contains(&ratio),
        "1080p/720p height ratio {ratio}"
    );
}

#[test]
fn expanded_card_is_larger_and_shows_more() {
    let mut renderer = renderer();
    let collapsed = renderer.product_card(&sale_card(), 720).unwrap();
    let expanded = renderer
        .product_card(
            &ProductCard {
                expanded: true,
                ..sale_card()
            },
            720,
        )
        .unwrap();
    assert!(
        expanded.width > collapsed.width,
        "{} vs {}",
        expanded.width,
        collapsed.width
    );
    assert!(
        expanded.height > collapsed.height * 3 / 2,
        "{} vs {}",
        expanded.height,
        collapsed.height
    );
    // The call-to-action button is a solid accent block the collapsed card does not have.
    let button_red = count_near(&expanded, opaque_box(&expanded, 240), [228, 57, 60], 6);
    let collapsed_red = count_near(&collapsed, opaque_box(&collapsed, 240), [228, 57, 60], 6);
    assert!(
        button_red > collapsed_red * 3,
        "{button_red} vs {collapsed_red}"
    );
}

/// The button box a client hit-tests is where the button's accent block is: accent inside
/// it, and no accent-coloured row of the card below or beside it.
#[test]
fn the_expanded_card_says_where_its_button_is() {
    let mut renderer = renderer();
    let collapsed = renderer.product_card_picture(&sale_card(), 720).unwrap();
    assert_eq!(collapsed.button, None, "a collapsed card has no button");
    let expanded = ProductCard {
        expanded: true,
        ..sale_card()
    };
    for height in [360, 720, 1080] {
        let picture = renderer.product_card_picture(&expanded, height).unwrap();
        let image = &picture.image;
        let [x, y, w, h] = picture.button.expect("an expanded card has a button");
        assert!(
            x + w <= image.width && y + h <= image.height,
            "inside the card"
        );
        let inside = (x, y, x + w - 1, y + h - 1);
        let accent = count_near(image, inside, [228, 57, 60], 6);
        let area = (w * h) as usize;
        // The rounded ends and the label take the rest.
        assert!(
            accent * 10 >= area * 6,
            "{height}p: {accent} of {area} accent"
        );
        // The button is the card's last block: nothing accent-coloured below it.
        let below = (0, y + h, image.width - 1, image.height - 1);
        assert_eq!(count_near(image, below, [228, 57, 60], 6), 0, "{height}p");
        // Its edges are the block's: a row just inside is mostly accent, one just outside none.
        let row = |row: u32| count_near(image, (x, row, x + w - 1, row), [228, 57, 60], 6);
        assert!(
            row(y + h / 2) * 10 >= w as usize * 8,
            "{height}p middle row"
        );
        assert_eq!(row(y.saturating_sub(2)), 0, "{height}p row above");
    }
}

#[test]
fn collapsed_card_ignores_the_detail() {
    let mut renderer = renderer();
    let with_detail = renderer.product_card(&sale_card(), 720).unwrap();
    let without = renderer
        .product_card(
            &ProductCard {
                detail: None,
                ..sale_card()
            },
            720,
        )
        .unwrap();
    assert_eq!(with_detail, without);
}

#[test]
fn countdown_changes_the_pixels_not_the_size() {
    let mut renderer = renderer();
    let mut at = |secs| {
        let card = ProductCard {
            countdown: Some(Duration::from_secs(secs)),
            ..sale_card()
        };
        renderer.product_card(&card, 720).unwrap()
    };
    let (first, next) = (at(754), at(753));
    assert_eq!((first.width, first.height), (next.width, next.height));
    assert_ne!(first.pixels, next.pixels);
    // Rendering is deterministic: the same input gives the same bytes (render groups
    // rely on identical overlays for identical keys).
    assert_eq!(at(754), first);
}

#[test]
fn coupon_shows_the_name() {
    let mut renderer = renderer();
    let short = renderer
        .coupon(
            &Coupon {
                text: "李雷, 20% off today".into(),
            },
            720,
        )
        .unwrap();
    let long = renderer
        .coupon(
            &Coupon {
                text: "欧阳娜娜娜, 20% off today".into(),
            },
            720,
        )
        .unwrap();
    assert_eq!(short.height, long.height);
    assert!(
        long.width > short.width,
        "{} vs {}",
        long.width,
        short.width
    );
    // White text on the accent ticket.
    let white = count_near(&short, opaque_box(&short, 240), [255, 255, 255], 20);
    assert!(white > 300, "white text pixels: {white}");
}

#[test]
fn endless_text_is_cut_to_the_card() {
    let mut renderer = renderer();
    let name = "很长的名字".repeat(500);
    let coupon = renderer
        .coupon(
            &Coupon {
                text: format!("{name}, 20% off"),
            },
            1080,
        )
        .unwrap();
    assert!(coupon.width < 1000, "coupon width {}", coupon.width);
    let card = ProductCard {
        title: "标题\n第二行\t".repeat(300),
        ..sale_card()
    };
    let image = renderer.product_card(&card, 1080).unwrap();
    assert!(
        image.width < 700 && image.height < 500,
        "{}x{}",
        image.width,
        image.height
    );
}

#[test]
fn empty_text_still_renders_a_card() {
    let mut renderer = renderer();
    let card = ProductCard {
        title: String::new(),
        price: String::new(),
        countdown: None,
        expanded: false,
        detail: None,
    };
    let image = renderer.product_card(&card, 720).unwrap();
    assert!(image.width > 0 && image.height > 0);
    let coupon = renderer
        .coupon(
            &Coupon {
                text: String::new(),
            },
            720,
        )
        .unwrap();
    assert!(coupon.width > 0 && coupon.height > 0);
}

#[test]
fn missing_font_path_is_a_clear_error() {
    let missing = PathBuf::from("/nonexistent/fonts/NotoSansCJK-Regular.ttc");
    let error = CardRenderer::new(CardFonts {
        paths: vec![missing],
    })
    .unwrap_err();
    assert!(matches!(error, CardError::FontUnreadable { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("/nonexistent/fonts/NotoSansCJK-Regular.ttc"),
        "{message}"
    );
    assert!(message.contains("No such file"), "{message}");
}

#[test]
fn absurd_output_height_is_refused() {
    let mut renderer = renderer();
    let error = renderer.product_card(&sale_card(), 0).unwrap_err();
    assert!(
        matches!(
            error,
            CardError::OutputHeight {
                output_height_px: 0,
                ..
            }
        ),
        "{error}"
    );
    assert!(renderer
        .coupon(&Coupon { text: "x".into() }, 100_000)
        .is_err());
}

#[test]
fn configured_single_font_file_works() {
    let regular = CardFonts::noto_cjk_system().unwrap().paths.remove(0);
    let mut renderer = CardRenderer::new(CardFonts {
        paths: vec![regular],
    })
    .unwrap();
    let image = renderer.product_card(&sale_card(), 720).unwrap();
    assert!(image.width > 0);
}

#[test]
fn png_snapshot_decodes_to_the_same_pixels() {
    let mut renderer = renderer();
    let image = renderer
        .coupon(
            &Coupon {
                text: "李雷, 20% off today".into(),
            },
            720,
        )
        .unwrap();
    let path = std::env::temp_dir()
        .join(format!("edge-cards-test-{}", std::process::id()))
        .join("coupon.png");
    image.write_png(&path).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    assert_eq!((info.width, info.height), (image.width, image.height));
    assert_eq!(&pixels[..info.buffer_size()], &image.pixels[..]);
}
