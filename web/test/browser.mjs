// Drives Debian's Chromium (headless, through playwright-core) against a running node and prints
// one line `EDGE_BROWSER_RESULT <json>` for the Rust test that started the node to judge.
//
//   node web/test/browser.mjs play    <page-url> <seconds> [screenshot.png]
//   node web/test/browser.mjs refused <page-url>
//   node web/test/browser.mjs watch   <node-url> <seconds>
//   node web/test/browser.mjs states  <page-url>
//   node web/test/browser.mjs gestures <page-url>
//   node web/test/browser.mjs locate  <page-url> <lat,lon>
//   node web/test/browser.mjs buy     <page-url> [screenshot.png]
//
// play:    opens the node's own page on a phone-sized screen, waits until it plays, resets the
//          page's figures, waits <seconds>, and reports what the page itself measured.
// gestures: once playing, zooms with the wheel at the centre, pinches out with two fingers,
//          double-taps, then taps at 25% / 75% of the picture, and reports the page's view.
// locate:  once playing without the permission, the viewer taps "Use my location" and allows it;
//          then it moves, and the page sends the new position too
//          at <lat,lon>; waits for the page to play again.
// buy:     once the page knows a card that expands (the overlays track), reports the accessible
//          overlays, taps the card, waits for its expanded layout with a buy button, taps the
//          button, then presses it again from the keyboard; reports the `edge-node:buy` events
//          a listener on `window` received (as a shop app embedding the page would).
// EDGE_BROWSER_NO_WEBTRANSPORT=1 removes WebTransport from the page before it loads;
// EDGE_BROWSER_GEO=lat,lon grants the page the geolocation permission at that position.
//
// refused: waits until the page says it was refused and reports what it shows.
// states:  prints `EDGE_STATE <json>` each time the page's state or status text changes, until
//          stdin closes (the Rust test drives the node meanwhile and reads the lines as events).
// watch:   plays the node with the published @moq/watch element (test/.build, built by
//          `npm run build`), served from a loopback server of this script, and counts the frames
//          its decoder outputs.
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.EDGE_CHROMIUM ?? "/usr/bin/chromium";
/** The whole run ends by then whatever happens, so a stuck browser cannot hang the test. */
const HARD_LIMIT_MS = 90_000;
/** A phone in portrait (CSS pixels), as most viewers hold it. */
const PHONE = { width: 390, height: 844 };

function fail(message) {
  console.error(`browser test: ${message}`);
  process.exit(1);
}

const [mode, target, secondsArg, screenshot] = process.argv.slice(2);
if (!["play", "refused", "watch", "states", "gestures", "locate", "buy"].includes(mode) || !target) {
  fail("usage: browser.mjs play|refused|watch|states|gestures|locate|buy <url> [seconds|lat,lon|screenshot.png] [screenshot.png]");
}
const seconds = Number(secondsArg ?? 10);
setTimeout(() => fail(`no result within ${HARD_LIMIT_MS / 1000} s`), HARD_LIMIT_MS).unref();

/** The picture inside the letterboxed canvas, in CSS pixels. */
function pictureBox(page) {
  return page.evaluate(() => {
    const canvas = document.getElementById("video");
    const box = canvas.getBoundingClientRect();
    const scale = Math.min(box.width / canvas.width, box.height / canvas.height);
    const width = canvas.width * scale;
    const height = canvas.height * scale;
    return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
  });
}

async function waitFor(page, predicate, timeoutMs, what) {
  try {
    await page.waitForFunction(predicate, undefined, { timeout: timeoutMs, polling: 50 });
  } catch {
    const seen = await page.evaluate(() => ({
      state: window.edgeViewer?.state,
      detail: window.edgeViewer?.detail,
    }));
    fail(`${what} not seen within ${timeoutMs / 1000} s; the page shows ${JSON.stringify(seen)}`);
  }
}

// playwright gives every launch a fresh temporary profile of its own.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--no-sandbox",
    // Containers (CI runners) often give /dev/shm 64 MB, which a video page outgrows.
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let result;
try {
  // EDGE_BROWSER_GEO=lat,lon: the viewer has allowed this page its location, and is there.
  const geo = process.env.EDGE_BROWSER_GEO?.split(",").map(Number);
  const context = await browser.newContext({
    viewport: PHONE,
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    ...(geo ? { permissions: ["geolocation"], geolocation: { latitude: geo[0], longitude: geo[1] } } : {}),
  });
  const page = await context.newPage();
  page.on("console", (message) => {
    if (["error", "warning"].includes(message.type())) console.error(`[page ${message.type()}] ${message.text()}`);
  });
  page.on("pageerror", (error) => console.error(`[page exception] ${error.message}`));
  // As on every iOS browser: no WebTransport, so the page must use its WebSocket fallback.
  if (process.env.EDGE_BROWSER_NO_WEBTRANSPORT === "1") {
    await page.addInitScript(() => {
      delete window.WebTransport;
    });
  }

  if (mode === "play") {
    await page.goto(target);
    await waitFor(page, () => window.edgeViewer?.state === "playing", 20_000, "playing");
    await page.evaluate(() => window.edgeViewer.resetStats());
    await page.waitForTimeout(seconds * 1000);
    result = await page.evaluate(() => window.edgeViewer.stats());
    result.statusText = await page.locator("#status").innerText();
    // Phone first: the picture box fills the screen held either way (the picture itself is
    // letterboxed inside it by object-fit).
    const box = () => page.evaluate(() => {
      const r = document.getElementById("video").getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height, viewport: [innerWidth, innerHeight] };
    });
    result.layout = { portrait: await box() };
    await page.setViewportSize({ width: PHONE.height, height: PHONE.width });
    await page.waitForTimeout(300);
    result.layout.landscape = await box();
    if (screenshot) await page.screenshot({ path: screenshot.replace(/\.png$/, "-landscape.png") });
    await page.setViewportSize(PHONE);
    await page.waitForTimeout(300);
    if (screenshot) {
      await page.click("#stats-toggle");
      await page.waitForTimeout(600);
      await page.screenshot({ path: screenshot });
      result.screenshot = screenshot;
    }
  } else if (mode === "locate") {
    await page.goto(target);
    await waitFor(page, () => window.edgeViewer?.state === "playing", 20_000, "playing");
    const button = page.locator("#locate");
    await button.waitFor({ state: "visible", timeout: 5_000 });
    const [latitude, longitude] = secondsArg.split(",").map(Number);
    await context.grantPermissions(["geolocation"]);
    await context.setGeolocation({ latitude, longitude });
    const drawnBefore = await page.evaluate(() => window.edgeViewer.stats().drawn);
    await button.click();
    // The position goes to the node on the control channel; the session goes on.
    await waitFor(page, () => window.edgeViewer?.stats()?.controlSent >= 1, 10_000, "a position message");
    // The viewer walks about 1.1 km north: the page follows and tells the node again.
    await context.setGeolocation({ latitude: latitude + 0.01, longitude });
    await waitFor(page, () => window.edgeViewer.stats().controlSent >= 2, 10_000, "a second position message");
    await waitFor(page, () => window.edgeViewer.state === "playing", 20_000, "still playing");
    result = { drawnBefore, position: await page.evaluate(() => window.edgeViewer.stats().position), buttonHidden: await button.isHidden() };
  } else if (mode === "buy") {
    await page.addInitScript(() => {
      window.__buyEvents = [];
      window.addEventListener("edge-node:buy", (event) => window.__buyEvents.push({ ...event.detail, at: performance.now() }));
    });
    await page.goto(target);
    await waitFor(page, () => window.edgeViewer?.state === "playing", 20_000, "playing");
    const card = () => window.edgeViewer.overlays?.overlays.find((o) => o.tap === "expand");
    await waitFor(page, card, 10_000, "a card that expands in the overlays layout");
    // What a screen reader finds over the picture, and where (CSS pixels).
    const accessible = () =>
      page.evaluate(() =>
        [...document.querySelectorAll("#overlays [aria-label]")].map((e) => {
          const r = e.getBoundingClientRect();
          return {
            tag: e.tagName.toLowerCase(),
            role: e.getAttribute("role") ?? undefined,
            label: e.getAttribute("aria-label"),
            expanded: e.getAttribute("aria-expanded") ?? undefined,
            overlay: e.dataset.overlay,
            buy: e.classList.contains("overlay-buy"),
            box: { x: r.x, y: r.y, width: r.width, height: r.height },
          };
        }),
      );
    const picture = () => pictureBox(page);
    const centre = async (r, layout) => {
      const p = await picture();
      return [p.left + ((r.x + r.w / 2) / layout.width) * p.width, p.top + ((r.y + r.h / 2) / layout.height) * p.height];
    };
    const before = await page.evaluate(() => window.edgeViewer.overlays);
    const labelsBefore = await accessible();
    const collapsed = before.overlays.find((o) => o.tap === "expand");
    // From the tap to the first picture with the card expanded, seen in the page: the tap's
    // pointerup, and the overlay layer's change (its buy button appears), which happens in the
    // same task as that picture's draw. Counted in frames drawn, and in the media time between
    // the picture on screen at the tap and the expanded one.
    await page.evaluate(() => {
      const now = () => {
        const s = window.edgeViewer.stats();
        return { drawn: s.drawn, shownUs: s.shownTimestampUs, at: performance.now() };
      };
      addEventListener("pointerup", () => (window.__tap = now()), { capture: true, once: true });
      const layer = document.getElementById("overlays");
      const observer = new MutationObserver(() => {
        if (!window.__tap || !layer.querySelector(".overlay-buy")) return;
        window.__expanded = now();
        observer.disconnect();
      });
      observer.observe(layer, { childList: true });
    });
    await page.touchscreen.tap(...(await centre(collapsed, before)));
    const expanded = () => window.edgeViewer.overlays?.overlays.find((o) => o.tap === "expand" && o.expanded && o.button);
    await waitFor(page, expanded, 10_000, "the expanded card with its buy button");
    await waitFor(page, () => window.__expanded, 5_000, "the overlay layer showing the buy button");
    const { expandedAfterMs, expandedAfterFrames, expandedAfterMediaUs } = await page.evaluate(() => ({
      expandedAfterMs: window.__expanded.at - window.__tap.at,
      expandedAfterFrames: window.__expanded.drawn - window.__tap.drawn,
      expandedAfterMediaUs: window.__expanded.shownUs - window.__tap.shownUs,
    }));
    const after = await page.evaluate(() => window.edgeViewer.overlays);
    const labelsAfter = await accessible();
    const news = await page.locator("#overlay-news").textContent();
    const liveRegion = await page.evaluate(() => document.getElementById("overlay-news")?.getAttribute("aria-live"));
    if (screenshot ?? secondsArg?.endsWith(".png")) await page.screenshot({ path: screenshot ?? secondsArg });
    // Where the button is now: the card glides away from faces while it is open.
    const current = await page.evaluate(() => window.edgeViewer.overlays);
    const open = current.overlays.find((o) => o.tap === "expand" && o.expanded && o.button);
    if (!open) throw new Error(`the card closed before its buy button was tapped: ${JSON.stringify(current.overlays.map((o) => o.id))}`);
    await page.touchscreen.tap(...(await centre(open.button, current)));
    await waitFor(page, () => window.__buyEvents.length >= 1, 5_000, "the buy event from a tap");
    // The same button from a keyboard (and so from a screen reader's activation).
    await page.locator("#overlays .overlay-buy").first().focus();
    await page.keyboard.press("Enter");
    await waitFor(page, () => window.__buyEvents.length >= 2, 5_000, "the buy event from the keyboard");
    result = {
      before,
      after,
      labelsBefore,
      labelsAfter,
      news,
      liveRegion,
      expandedAfterMs,
      expandedAfterFrames,
      expandedAfterMediaUs,
      buyEvents: await page.evaluate(() => window.__buyEvents),
      pageBuys: await page.evaluate(() => window.edgeViewer.buys),
      picture: await picture(),
    };
  } else if (mode === "gestures") {
    await page.goto(target);
    await waitFor(page, () => window.edgeViewer?.state === "playing", 20_000, "playing");
    const picture = await pictureBox(page);
    const at = (u, v) => [picture.left + u * picture.width, picture.top + v * picture.height];
    const [cx, cy] = at(0.5, 0.5);
    const views = {};
    await page.mouse.move(cx, cy);
    await page.mouse.wheel(0, -400);
    await page.waitForTimeout(200);
    views.afterWheel = await page.evaluate(() => window.edgeViewer.stats().view);
    // Two fingers 80 px apart spreading to 160 px: half the view again.
    const cdp = await page.context().newCDPSession(page);
    const touch = (type, spread) =>
      cdp.send("Input.dispatchTouchEvent", {
        type,
        touchPoints: type === "touchEnd" ? [] : [
          { x: cx - spread, y: cy, id: 1 },
          { x: cx + spread, y: cy, id: 2 },
        ],
      });
    await touch("touchStart", 40);
    for (const spread of [50, 60, 70, 80]) {
      await touch("touchMove", spread);
      await page.waitForTimeout(40);
    }
    await touch("touchEnd", 80);
    await page.waitForTimeout(200);
    views.afterPinch = await page.evaluate(() => window.edgeViewer.stats().view);
    await page.touchscreen.tap(cx, cy);
    await page.waitForTimeout(80);
    await page.touchscreen.tap(cx, cy);
    await page.waitForTimeout(500);
    views.afterDoubleTap = await page.evaluate(() => window.edgeViewer.stats().view);
    await page.touchscreen.tap(...at(0.25, 0.75));
    await page.waitForTimeout(500);
    result = { views, controlSent: await page.evaluate(() => window.edgeViewer.stats().controlSent) };
  } else if (mode === "states") {
    let open = true;
    process.stdin.on("close", () => (open = false));
    process.stdin.on("end", () => (open = false));
    process.stdin.resume();
    await page.goto(target);
    let last = "";
    while (open) {
      const seen = await page.evaluate(() => ({ state: window.edgeViewer?.state, detail: window.edgeViewer?.detail }));
      // The retry countdown changes every second; the state and its reason are what matter.
      const key = `${seen.state} ${String(seen.detail).replace(/Trying again in \d+ s\./, "")}`;
      if (key !== last) {
        last = key;
        console.log(`EDGE_STATE ${JSON.stringify(seen)}`);
      }
      await page.waitForTimeout(50);
    }
    result = { ended: "stdin closed" };
  } else if (mode === "refused") {
    await page.goto(target);
    await waitFor(page, () => window.edgeViewer?.state === "refused", 20_000, "the refusal");
    result = await page.evaluate(() => ({
      state: window.edgeViewer.state,
      refusal: window.edgeViewer.refusal,
      title: document.getElementById("status-title").textContent,
      detail: document.getElementById("status-detail").textContent,
    }));
  } else {
    // The test page comes from a loopback server of our own (another origin on the same
    // machine: the node's hash endpoint answers with CORS, and Chromium's local-network checks
    // pass between loopback origins).
    const build = join(here, ".build");
    const files = createServer(async (request, response) => {
      const name = new URL(request.url, "http://x").pathname.slice(1);
      if (!["watch.html", "watch.js"].includes(name)) {
        response.writeHead(404).end();
        return;
      }
      const type = name.endsWith(".js") ? "text/javascript" : "text/html";
      response.writeHead(200, { "content-type": type }).end(await readFile(join(build, name)));
    });
    await new Promise((resolve) => files.listen(0, "127.0.0.1", resolve));
    files.unref();
    const origin = `http://127.0.0.1:${files.address().port}`;
    // Count what the player's decoder hands out, without changing the player.
    await page.addInitScript(() => {
      window.__decoded = 0;
      const Original = window.VideoDecoder;
      window.VideoDecoder = class extends Original {
        constructor(init) {
          super({
            ...init,
            output: (frame) => {
              window.__decoded += 1;
              init.output(frame);
            },
          });
        }
      };
    });
    await page.goto(`${origin}/watch.html?node=${encodeURIComponent(target)}`);
    await waitFor(page, () => window.__decoded > 0, 20_000, "a first decoded frame from @moq/watch");
    const before = await page.evaluate(() => window.__decoded);
    await page.waitForTimeout(seconds * 1000);
    const after = await page.evaluate(() => window.__decoded);
    result = { decoded: after - before, seconds };
  }
} finally {
  await browser.close();
}
console.log(`EDGE_BROWSER_RESULT ${JSON.stringify(result)}`);
process.exit(0);
