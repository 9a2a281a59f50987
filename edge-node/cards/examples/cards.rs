//! Renders sample cards to `out/cards/` and prints how long rendering takes.
//!
//! cargo run --release -p edge-cards --example cards [-- OUT_DIR]
//! Fonts: Noto Sans CJK from the system, or the files listed in EDGE_CARDS_FONTS (colon
//! separated).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use edge_cards::{CardFonts, CardRenderer, Coupon, ProductCard, RgbaImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../out/cards"));
    let fonts = match std::env::var_os("EDGE_CARDS_FONTS") {
        Some(list) => CardFonts {
            paths: std::env::split_paths(&list).collect(),
        },
        None => CardFonts::noto_cjk_system()?,
    };

    let started = Instant::now();
    let mut renderer = CardRenderer::new(fonts.clone())?;
    let load = started.elapsed();
    println!(
        "fonts {:?} -> family {:?}, loaded in {}",
        fonts.paths,
        renderer.font_family(),
        ms(load)
    );

    let card = ProductCard {
        title: "武林银泰 限时特价 真丝围巾".into(),
        price: "¥199".into(),
        countdown: Some(Duration::from_secs(12 * 60 + 34)),
        expanded: false,
        detail: Some("杭州丝绸 · 100% 桑蚕丝 · 今日下单包邮".into()),
    };
    let expanded = ProductCard {
        expanded: true,
        ..card.clone()
    };
    let coupon = Coupon {
        text: "李雷, 20% off today".into(),
    };

    // First renders: every glyph is shaped and rasterised for the first time.
    for height in [720u32, 1080] {
        let started = Instant::now();
        let image = renderer.product_card(&card, height)?;
        let cold = started.elapsed();
        save(&out_dir, &format!("product-{height}p.png"), &image)?;
        let image = renderer.product_card(&expanded, height)?;
        save(&out_dir, &format!("product-expanded-{height}p.png"), &image)?;
        let image = renderer.coupon(&coupon, height)?;
        save(&out_dir, &format!("coupon-{height}p.png"), &image)?;
        println!(
            "{height}p product card, first render (cold caches): {}",
            ms(cold)
        );
    }
    let long_hours = ProductCard {
        title: "西湖龙井 明前特级 250g 礼盒装 送长辈 杭州特产 官方正品".into(),
        countdown: Some(Duration::from_secs(2 * 3600 + 5 * 60 + 9)),
        ..card.clone()
    };
    save(
        &out_dir,
        "product-long-title-720p.png",
        &renderer.product_card(&long_hours, 720)?,
    )?;
    println!("samples written to {}", out_dir.display());

    const RUNS: u32 = 200;
    for height in [720u32, 1080] {
        let same = time(RUNS, |_| renderer.product_card(&card, height).map(drop))?;
        let expanded_same = time(RUNS, |_| renderer.product_card(&expanded, height).map(drop))?;
        // A new countdown text every call: the line is reshaped, digits come from the cache.
        let ticking = time(RUNS, |i| {
            let ticking = ProductCard {
                countdown: Some(Duration::from_secs(3000 - u64::from(i))),
                ..card.clone()
            };
            renderer.product_card(&ticking, height).map(drop)
        })?;
        // A new viewer name every call: shaped fresh; new ideographs rasterised fresh.
        let names: Vec<char> = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤".chars().collect();
        let personal = time(RUNS, |i| {
            let a = names[i as usize % names.len()];
            let b = names[(i as usize * 7 + 3) % names.len()];
            let coupon = Coupon {
                text: format!("{a}{b}, 20% off today"),
            };
            renderer.coupon(&coupon, height).map(drop)
        })?;
        println!("{height}p, {RUNS} renders each:");
        println!("  product card, same content     {same}");
        println!("  expanded card, same content    {expanded_same}");
        println!("  product card, countdown ticks  {ticking}");
        println!("  coupon, a new name each time   {personal}");
    }
    Ok(())
}

fn save(dir: &std::path::Path, name: &str, image: &RgbaImage) -> Result<(), edge_cards::CardError> {
    image.write_png(&dir.join(name))?;
    println!("  {name}: {}x{}", image.width, image.height);
    Ok(())
}

/// Per-render times: the median is what a card costs; the tail shows scheduling noise of a
/// shared machine as much as the renderer.
struct Timing {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {}  p99 {}  mean {}",
            ms(self.median),
            ms(self.p99),
            ms(self.mean)
        )
    }
}

fn time(
    runs: u32,
    mut render: impl FnMut(u32) -> Result<(), edge_cards::CardError>,
) -> Result<Timing, edge_cards::CardError> {
    let mut samples = Vec::with_capacity(runs as usize);
    for i in 0..runs {
        let started = Instant::now();
        render(i)?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction).round() as usize];
    Ok(Timing {
        median: at(0.5),
        p99: at(0.99),
        mean: samples.iter().sum::<Duration>() / runs,
    })
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}
