//! The overlays track end to end: a real node (`edge-node serve`) and the node's own
//! subscriber. Each viewer's `overlays` messages say where its rendering drew what. The upstream
//! is a plain black picture, so every pixel that is not black is an overlay's: the test finds
//! where each overlay actually is in every decoded picture and checks it against the message in
//! force at that picture's time, before and after a tap expands the product card (which also
//! shows its buy button, an accent-red block). The viewer page (headless Chromium) uses the
//! same messages: a tap on the expanded card's buy button raises `edge-node:buy` with the
//! product, and screen readers find every overlay over the picture.

#[path = "common/browser.rs"]
mod browser;
mod common;

use common::*;
use edge_deliver::client::{self, ClientOptions};
use edge_media::{DecodedFrame, ViewDecoder};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One node at a time: two at once on a small CI machine would test its contention instead.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WIDTH: usize = 1280;
const HEIGHT: usize = 720;
/// The test show's frame rate for the page test (a debug node keeps 15 fps on a loaded machine).
const SHOW_FPS: u32 = 15;
type Box4 = [i64; 4];

/// Where a picture is not the black background, `[x0, y0, x1, y1)`, by region.
#[derive(Clone, Copy, Debug, Default)]
struct Measured {
    top_left: Option<Box4>,
    top_right: Option<Box4>,
    bottom_right: Option<Box4>,
    /// The accent-red block (the expanded card's button) in the top right.
    red: Option<Box4>,
}

/// The longest run of indices where `hit` holds, bridging gaps of two (a line of text or a
/// codec ripple does not split an overlay).
fn longest_run(hit: impl Iterator<Item = bool>) -> Option<(usize, usize)> {
    let mut runs = Vec::new();
    let (mut current, mut gap): (Option<(usize, usize)>, usize) = (None, 0);
    for (i, hit) in hit.enumerate() {
        if hit {
            current = Some(current.map_or((i, i + 1), |(s, _)| (s, i + 1)));
            gap = 0;
        } else if let Some(run) = current {
            gap += 1;
            if gap > 2 {
                runs.push(run);
                current = None;
            }
        }
    }
    runs.extend(current);
    runs.into_iter().max_by_key(|(s, e)| e - s)
}

/// The box of the samples of `plane` (`stride` wide) inside `window` that `hit`: the columns
/// holding at least `min[0]` of them, then the rows holding at least `min[1]` within those
/// columns.
fn box_of(
    plane: &[u8],
    stride: usize,
    window: [usize; 4],
    min: [usize; 2],
    hit: impl Fn(u8) -> bool,
) -> Option<Box4> {
    let [wx0, wy0, wx1, wy1] = window;
    let mut columns = vec![0usize; wx1 - wx0];
    for row in plane[wy0 * stride..wy1 * stride].chunks_exact(stride) {
        for (count, v) in columns.iter_mut().zip(&row[wx0..wx1]) {
            *count += usize::from(hit(*v));
        }
    }
    let (x0, x1) = longest_run(columns.iter().map(|c| *c >= min[0]))?;
    let (x0, x1) = (wx0 + x0, wx0 + x1);
    let rows = plane[wy0 * stride..wy1 * stride]
        .chunks_exact(stride)
        .map(|row| row[x0..x1].iter().filter(|v| hit(**v)).count() >= min[1]);
    let (y0, y1) = longest_run(rows)?;
    Some([x0 as i64, (wy0 + y0) as i64, x1 as i64, (wy0 + y1) as i64])
}

/// Where the picture is not the black background: overlays are all far brighter (the darkest,
/// the live badge's red, has luma about 90 against 16). The button's accent red is found in
/// Cr, at chroma resolution (so its box is to 2 px).
fn measure(frame: &DecodedFrame) -> Measured {
    assert_eq!(
        (frame.width as usize, frame.height as usize),
        (WIDTH, HEIGHT)
    );
    let luma = &frame.data[..WIDTH * HEIGHT];
    let (cw, ch) = (WIDTH / 2, HEIGHT / 2);
    let cr = &frame.data[WIDTH * HEIGHT + cw * ch..WIDTH * HEIGHT + 2 * cw * ch];
    let bright = |v: u8| v > 48;
    let top_right = [WIDTH / 2, 0, WIDTH, HEIGHT / 2 + 80];
    Measured {
        top_left: box_of(luma, WIDTH, [0, 0, WIDTH / 2, HEIGHT / 3], [4, 4], bright),
        top_right: box_of(luma, WIDTH, top_right, [4, 4], bright),
        bottom_right: box_of(
            luma,
            WIDTH,
            [WIDTH / 2, HEIGHT / 2 + 80, WIDTH, HEIGHT],
            [4, 4],
            bright,
        ),
        // Rows where a wide stretch is accent red (#E4393C: Cr far above neutral); the price,
        // red too, is text: never 60 chroma samples (120 px) of one row.
        red: box_of(cr, cw, top_right.map(|v| v / 2), [8, 60], |v| v > 190)
            .map(|b| b.map(|v| v * 2)),
    }
}

#[derive(Default)]
struct Watched {
    /// Media time (µs) → where the picture differs from the background.
    pictures: BTreeMap<u64, Measured>,
    /// (media time µs, message), in arrival order.
    overlays: Vec<(u64, Value)>,
    /// The media time after which the tap was sent, for the tapper.
    tapped_after_us: Option<u64>,
}

impl Watched {
    /// The layout that holds for the picture at `at_us`: the newest message at or before it.
    fn layout_at(&self, at_us: u64) -> Option<&Value> {
        self.overlays
            .iter()
            .filter(|(t, _)| *t <= at_us)
            .max_by_key(|(t, _)| *t)
            .map(|(_, m)| m)
    }
}

fn entry<'a>(layout: &'a Value, id: &str) -> Option<&'a Value> {
    layout["overlays"]
        .as_array()?
        .iter()
        .find(|o| o["id"] == id)
}

/// `[x0, y0, x1, y1)` of an entry (or its button).
fn rect_of(o: &Value) -> Box4 {
    let n = |k: &str| o[k].as_i64().unwrap_or_else(|| panic!("{k} in {o}"));
    [n("x"), n("y"), n("x") + n("w"), n("y") + n("h")]
}

/// Subscribes to `url`, decodes `seconds` of it and reads its overlays track; a `tapper` taps
/// the centre of the product card, found from its own overlays messages, after 30 frames.
async fn watch(url: url::Url, seconds: f64, tapper: bool) -> Watched {
    let mut subscription = client::subscribe(&url, ClientOptions::default())
        .await
        .unwrap_or_else(|e| panic!("subscribing {url}: {e}"));
    let mut messages = subscription.subscribe_overlays().await.expect("overlays");
    let watched: Arc<Mutex<Watched>> = Arc::default();
    let sink = watched.clone();
    let reader = tokio::spawn(async move {
        while let Some((at_us, message)) = messages.next().await {
            let value: Value = serde_json::from_slice(&message).expect("overlays are JSON");
            sink.lock().unwrap().overlays.push((at_us, value));
        }
    });
    let sink = watched.clone();
    let decoder = ViewDecoder::new(move |frame: DecodedFrame| {
        let measured = measure(&frame);
        sink.lock().unwrap().pictures.insert(frame.pts_us, measured);
    })
    .expect("decoder");
    let mut frames = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, subscription.next_frame()).await {
        decoder
            .push(&frame.data, frame.timestamp_us)
            .expect("decode");
        frames += 1;
        if tapper && frames == 30 {
            let mut watched = watched.lock().unwrap();
            let layout = watched
                .layout_at(frame.timestamp_us)
                .expect("a layout by the 30th frame");
            let card = entry(layout, "yintai-product-card").expect("the card is drawn");
            let [x0, y0, x1, y1] = rect_of(card);
            let (x, y) = (
                (x0 + x1) as f64 / 2.0 / WIDTH as f64,
                (y0 + y1) as f64 / 2.0 / HEIGHT as f64,
            );
            let tap = format!(r#"{{"type":"tap","x":{x:.4},"y":{y:.4}}}"#);
            subscription.send_control(tap.as_bytes()).expect("tap sent");
            watched.tapped_after_us = Some(frame.timestamp_us);
        }
    }
    decoder
        .finish(Duration::from_secs(3))
        .expect("decoder drains");
    reader.abort();
    drop(subscription);
    let mut watched = watched.lock().unwrap();
    std::mem::take(&mut *watched)
}

/// An image overlay's pixels fill its rectangle (to a pixel or two of codec blur).
fn same(measured: Option<Box4>, reported: Box4) -> bool {
    measured.is_some_and(|m| m.iter().zip(reported).all(|(m, r)| (m - r).abs() <= 2))
}

/// A card's panel sits inside its picture, inset by the room its soft shadow takes (16 px at
/// 720p, 20 px expanded, which draws 1.2 times larger; the shadow itself is dark on black):
/// the pixels are inside the rectangle the message gives, and fill it but for that margin.
fn card_fits(measured: Option<Box4>, reported: Box4) -> bool {
    measured.is_some_and(|m| {
        let inside = m[0] >= reported[0] - 2
            && m[1] >= reported[1] - 2
            && m[2] <= reported[2] + 2
            && m[3] <= reported[3] + 2;
        let filled = m[0] - reported[0] <= 22
            && m[1] - reported[1] <= 22
            && reported[2] - m[2] <= 22
            && reported[3] - m[3] <= 22;
        inside && filled
    })
}

/// A 30 s plain black 720p15 H.264 clip (ffmpeg), the upstream where every other pixel is an
/// overlay's.
fn black_clip(dir: &Path) -> std::path::PathBuf {
    let clip = dir.join("black.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "color=c=black:s=1280x720:r=15", "-t", "30"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "15",
            "-bf",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("run ffmpeg");
    assert!(made.success(), "ffmpeg made the clip");
    clip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_rectangles_are_where_the_pixels_are_frame_by_frame_and_follow_a_tap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let clip = black_clip(&unique_temp_dir("overlays-track"));
    let node = spawn_serving(anchored_node_command(
        &format!("file://{}", clip.display()),
        30,
    ));
    let everyone = tokio::spawn(watch(node.url("?zone=default"), 7.0, false));
    let mall = watch(node.url("?zone=yintai-mall"), 7.0, true).await;
    let everyone = everyone.await.expect("the default-zone viewer");

    // A viewer has the layout with its first picture: the first message is stamped with it.
    for (who, watched) in [("mall", &mall), ("default", &everyone)] {
        let first_picture = *watched.pictures.keys().next().expect("pictures");
        let first_message = watched.overlays.first().expect("overlays messages").0;
        assert!(
            first_message <= first_picture,
            "{who}: the first layout ({first_message}) comes with the first picture ({first_picture})"
        );
    }
    let first = &mall.overlays[0].1;
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let card = entry(first, "yintai-product-card").expect("the mall sees the card");
    assert_eq!(card["kind"], "card");
    assert_eq!(card["tap"], "expand");
    assert_eq!(card["product"]["id"], "longjing-mingqian-250g");
    assert!(card["label"].as_str().unwrap().contains("¥168"), "{card}");
    assert!(entry(&everyone.overlays[0].1, "yintai-product-card").is_none());

    // Every picture: its overlays are where the message in force at its time says.
    let mut mismatches = Vec::new();
    let (mut compared, mut expanded_pictures) = (0, 0);
    for (who, watched, ad) in [
        ("mall", &mall, "yintai-mall-ad"),
        ("default", &everyone, "default-ad"),
    ] {
        for (at, measured) in &watched.pictures {
            let Some(layout) = watched.layout_at(*at) else {
                continue;
            };
            compared += 1;
            let mut check = |what: &str, ok: bool, reported: Option<Box4>, seen: Option<Box4>| {
                if !ok {
                    mismatches.push(format!(
                        "{who} {at}: {what} at {reported:?}, pixels at {seen:?}"
                    ));
                }
            };
            let badge = rect_of(entry(layout, "live-badge").expect("the badge"));
            check(
                "badge",
                same(measured.top_left, badge),
                Some(badge),
                measured.top_left,
            );
            let ad_rect = rect_of(entry(layout, ad).expect("the zone's ad"));
            let ad_ok = same(measured.bottom_right, ad_rect);
            check(ad, ad_ok, Some(ad_rect), measured.bottom_right);
            match entry(layout, "yintai-product-card") {
                Some(card) => {
                    let rect = rect_of(card);
                    check(
                        "card",
                        card_fits(measured.top_right, rect),
                        Some(rect),
                        measured.top_right,
                    );
                    if card["expanded"] == true {
                        expanded_pictures += 1;
                        let button = rect_of(&card["button"]);
                        check(
                            "button",
                            same(measured.red, button),
                            Some(button),
                            measured.red,
                        );
                    } else {
                        check("no button", measured.red.is_none(), None, measured.red);
                    }
                }
                None => check(
                    "nothing",
                    measured.top_right.is_none(),
                    None,
                    measured.top_right,
                ),
            }
        }
    }
    eprintln!(
        "compared {compared} pictures with their layouts ({expanded_pictures} with the card expanded); \
         layouts received: mall {}, default {}",
        mall.overlays.len(),
        everyone.overlays.len()
    );
    assert!(compared >= 120, "pictures compared: {compared}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches: {mismatches:#?}",
        mismatches.len()
    );

    // The tap expanded the card: a new layout, stamped with a picture the viewer received,
    // larger, with the buy button on the card and the same product.
    let tapped_after = mall.tapped_after_us.expect("tapped");
    let (expanded_at, expanded) = mall
        .overlays
        .iter()
        .find(|(at, m)| {
            *at > tapped_after && entry(m, "yintai-product-card").unwrap()["expanded"] == true
        })
        .expect("a layout with the card expanded after the tap");
    eprintln!("the layout after the tap: {expanded}");
    let card = entry(expanded, "yintai-product-card").unwrap();
    let [x0, y0, x1, y1] = rect_of(card);
    let [bx0, by0, bx1, by1] = rect_of(&card["button"]);
    assert!(
        x0 <= bx0 && bx1 <= x1 && y0 <= by0 && by1 <= y1,
        "the button is on the card: {card}"
    );
    let collapsed = rect_of(entry(first, "yintai-product-card").unwrap());
    assert!(
        x1 - x0 > collapsed[2] - collapsed[0],
        "the expanded card is larger"
    );
    assert_eq!(card["product"]["id"], "longjing-mingqian-250g");
    assert!(card["button"]["label"]
        .as_str()
        .is_some_and(|l| !l.is_empty()));
    assert!(
        expanded_pictures >= 10,
        "pictures with the expanded card compared: {expanded_pictures}"
    );
    assert!(
        mall.pictures.contains_key(expanded_at),
        "the expanded layout is stamped with a picture the viewer received"
    );
    drop(node);
    the_page_reads_what_the_node_sent(expanded, first);
}

/// The page's parser (web/src/overlays.js, run by Node.js) on what the node sent and on hostile
/// messages: every field of a real message kept, taps on the expanded card's button and
/// elsewhere on it told apart, and nonsense rejected or cut to bounds, never thrown on.
fn the_page_reads_what_the_node_sent(expanded: &Value, collapsed: &Value) {
    let card = entry(expanded, "yintai-product-card").unwrap();
    let [x0, y0, _, _] = rect_of(card);
    let [bx0, by0, bx1, by1] = rect_of(&card["button"]);
    let fraction = |x: i64, y: i64| serde_json::json!([x as f64 / 1280.0, y as f64 / 720.0]);
    let many: Vec<Value> = (0..100)
        .map(|i| serde_json::json!({"id": format!("o{i}"), "x": i, "y": 0, "w": 1, "h": 1}))
        .collect();
    let cases = [
        serde_json::json!({"message": expanded, "probe": fraction((bx0 + bx1) / 2, (by0 + by1) / 2)}),
        serde_json::json!({"message": expanded, "probe": fraction(x0 + 30, y0 + 30)}),
        serde_json::json!({"message": collapsed, "probe": fraction(640, 360)}),
        serde_json::json!({"message": "overlays"}),
        serde_json::json!({"message": {"width": -1, "height": 720, "overlays": []}}),
        serde_json::json!({"message": {"width": 1280, "height": 720, "overlays": [
            {"id": "no-size", "x": 0, "y": 0},
            {"id": "long", "x": 0, "y": 0, "w": 1, "h": 1, "label": "x".repeat(5000)},
            {"x": 0, "y": 0, "w": 1, "h": 1}
        ]}}),
        serde_json::json!({"message": {"width": 1280, "height": 720, "overlays": many}}),
    ];
    let lines: Vec<String> = cases.iter().map(Value::to_string).collect();
    let seen: Vec<Value> = browser::node_script_lines("overlays-check.mjs", &lines)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(seen.len(), cases.len(), "{seen:?}");

    // A real message: every overlay and field as the node sent it.
    let page = &seen[0]["layout"];
    let sent = expanded["overlays"].as_array().unwrap();
    let kept = page["overlays"].as_array().unwrap();
    assert_eq!(kept.len(), sent.len());
    for (kept, sent) in kept.iter().zip(sent) {
        for key in [
            "id", "kind", "x", "y", "w", "h", "label", "tap", "expanded", "product",
        ] {
            assert_eq!(kept.get(key), sent.get(key), "{key} of {sent}");
        }
    }
    let button = &kept[2]["button"];
    assert_eq!(
        (button["x"].as_i64(), button["label"].as_str()),
        (Some(bx0), card["button"]["label"].as_str())
    );
    assert_eq!(
        seen[0]["hit"],
        serde_json::json!({"id": "yintai-product-card", "part": "button"})
    );
    assert_eq!(
        seen[1]["hit"],
        serde_json::json!({"id": "yintai-product-card", "part": "overlay"})
    );
    assert_eq!(
        seen[2]["hit"],
        Value::Null,
        "the middle of the picture holds no overlay"
    );
    // Hostile: not a layout; a bad size; entries without a size or id dropped, an overlong
    // label left out; at most 32 overlays.
    assert_eq!(seen[3]["layout"], Value::Null);
    assert_eq!(seen[4]["layout"], Value::Null);
    let odd = seen[5]["layout"]["overlays"].as_array().unwrap();
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert_eq!(
        (odd[0]["id"].as_str(), odd[0].get("label")),
        (Some("long"), None)
    );
    assert_eq!(
        seen[6]["layout"]["overlays"].as_array().map(Vec::len),
        Some(32)
    );
}

/// The page at `/` on a real node: the card it learns about from the overlays track is tapped,
/// expands, and a tap on its buy button (then the same button pressed from the keyboard) raises
/// `edge-node:buy` with the card's product on `window`; every overlay has an accessible element
/// over the picture where the overlay is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_raises_the_buy_event_with_the_product_and_labels_every_overlay() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let node = spawn_serving(anchored_node_command(
        &format!("testshow://?width=1280&height=720&fps={SHOW_FPS}"),
        60,
    ));
    let page = format!("http://127.0.0.1:{}/?zone=yintai-mall", node.quic_port());
    // web/test/screenshots.sh points this at web/docs for the README.
    let shot = std::env::var("EDGE_VIEWER_CARD_SCREENSHOT")
        .unwrap_or_else(|_| format!("{}/viewer-phone-card.png", env!("CARGO_TARGET_TMPDIR")));
    let result = browser::browser(&["buy", &page, &shot]).await;

    let labels = |key: &str| -> Vec<Value> { result[key].as_array().expect(key).clone() };
    let before = labels("labelsBefore");
    let find = |list: &[Value], overlay: &str, buy: bool| -> Option<Value> {
        list.iter()
            .find(|l| l["overlay"] == overlay && l["buy"] == buy)
            .cloned()
    };
    // Every overlay the node drew is there for a screen reader, with words.
    for overlay in result["before"]["overlays"].as_array().expect("a layout") {
        let id = overlay["id"].as_str().unwrap();
        let element = find(&before, id, false).unwrap_or_else(|| panic!("{id} has an element"));
        assert!(
            element["label"].as_str().is_some_and(|l| !l.is_empty()),
            "{element}"
        );
    }
    let card = find(&before, "yintai-product-card", false).expect("the card's element");
    assert_eq!(card["tag"], "button", "the card answers a press: {card}");
    assert_eq!(card["expanded"], "false");
    assert!(card["label"].as_str().unwrap().contains("¥168"), "{card}");
    let badge = find(&before, "live-badge", false).expect("the badge's element");
    assert_eq!(
        (badge["role"].as_str(), badge["label"].as_str()),
        (Some("img"), Some("Live"))
    );
    // The card's element covers the card on screen: its box, in the picture's CSS pixels,
    // is the layout's rectangle scaled to the picture.
    let picture = &result["picture"];
    let layout = &result["before"];
    let scale = picture["width"].as_f64().unwrap() / layout["width"].as_f64().unwrap();
    let drawn = layout["overlays"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "yintai-product-card")
        .unwrap();
    let expect_x = picture["left"].as_f64().unwrap() + drawn["x"].as_f64().unwrap() * scale;
    let expect_w = drawn["w"].as_f64().unwrap() * scale;
    assert!(
        (card["box"]["x"].as_f64().unwrap() - expect_x).abs() < 1.0
            && (card["box"]["width"].as_f64().unwrap() - expect_w).abs() < 1.0,
        "the card's element at {} over the card at x {expect_x:.1}, width {expect_w:.1}",
        card["box"]
    );

    let after = labels("labelsAfter");
    let card = find(&after, "yintai-product-card", false).expect("the expanded card");
    assert_eq!(card["expanded"], "true");
    let buy = find(&after, "yintai-product-card", true).expect("the buy button's element");
    assert_eq!(buy["tag"], "button");
    assert!(buy["label"].as_str().unwrap().contains("¥168"), "{buy}");
    assert_eq!(result["liveRegion"], "polite");
    assert!(
        result["news"].as_str().is_some_and(|n| n.contains("¥168")),
        "the live region says the card opened: {}",
        result["news"]
    );
    // The tap goes out at once, the node draws the expanded card in the next frame it composes:
    // what is already encoded or in flight is all that comes before it. Counted in frame
    // periods of the video from the tap to the expanded picture on the canvas: frames drawn
    // would count a page catching up with two late frames twice, and the media time between
    // the pictures counts frames a page behind skips on its way to the live edge.
    let after_ms = result["expandedAfterMs"]
        .as_f64()
        .expect("time to the card");
    let periods = (after_ms * f64::from(SHOW_FPS) / 1e3).ceil() as u64;
    let media_frames = result["expandedAfterMediaUs"]
        .as_f64()
        .map(|us| (us * f64::from(SHOW_FPS) / 1e6).round() as i64);
    eprintln!(
        "card expanded on the page {after_ms:.0} ms after the tap: within {periods} frame periods \
         ({} frames drawn, the video {media_frames:?} frames on)",
        result["expandedAfterFrames"]
    );
    assert!(
        (1..=3).contains(&periods),
        "the expanded card came {after_ms:.0} ms after the tap: not within 3 frames"
    );

    let events = result["buyEvents"].as_array().expect("buy events");
    assert_eq!(
        events.len(),
        2,
        "one from the tap, one from the keyboard: {events:?}"
    );
    for event in events {
        assert_eq!(event["productId"], "longjing-mingqian-250g", "{event}");
        assert_eq!(
            event["link"],
            "https://shop.example.com/p/longjing-mingqian-250g"
        );
        assert_eq!(event["overlay"], "yintai-product-card");
    }
    assert_eq!(result["pageBuys"].as_array().map(Vec::len), Some(2));
    drop(node);
}
