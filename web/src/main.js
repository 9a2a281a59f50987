// The viewer page: states, reconnection with backoff, the stats panel, and a small read-only
// hook (`window.edgeViewer`) that the browser tests read the page's own figures from.

import { Gestures } from "./gestures.js";
import { currentPosition, followPosition, permission } from "./location.js";
import { dispatchBuy, OverlayLayer } from "./overlays.js";
import { Closed, Refused, Session } from "./player.js";

/** Query keys that configure this page and are not sent to the node. */
const PAGE_KEYS = new Set(["stats", "buffer", "transport"]);
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10_000;
/** A session that played this long resets the backoff: the next drop retries quickly. */
const HEALTHY_SESSION_MS = 5_000;
/** No new picture for this long while connected: say so instead of showing a frozen frame. */
const STALL_MS = 2_000;

const canvas = document.getElementById("video");
const statusBox = document.getElementById("status");
const statusTitle = document.getElementById("status-title");
const statusDetail = document.getElementById("status-detail");
const statsToggle = document.getElementById("stats-toggle");
const statsPanel = document.getElementById("stats");

const pageQuery = new URLSearchParams(location.search);
const bufferMs = clampNumber(pageQuery.get("buffer"), 0, 1000, 0);

/** The last 100 buy events raised, newest last (the tests read them; a shop app listens for
 * the event itself). */
const buys = [];
const overlayLayer = new OverlayLayer(document.getElementById("stage"), canvas, {
  tap: (u, v) => session?.control?.tap(u, v),
  buy: (overlay) => {
    buys.push(dispatchBuy(canvas, overlay));
    if (buys.length > 100) buys.shift();
  },
});
const gestures = new Gestures(canvas, () => session?.control, (u, v) => overlayLayer.tapped(u, v));

let state = "connecting";
let detail = "";
let session;
let attempt = 0;
let lastRefusal;

function clampNumber(text, min, max, fallback) {
  const value = Number(text);
  return text !== null && Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
}

/** The viewer's position, once it consented; the page's own `lat`/`lon` win over it. */
let position;
const positionInUrl = pageQuery.has("lat") && pageQuery.has("lon");

/** The node's URL: same host and port as this page, who/where in the query. */
function nodeUrl(scheme) {
  const url = new URL(`${scheme}//${location.host}/`);
  for (const [key, value] of pageQuery) {
    if (!PAGE_KEYS.has(key)) url.searchParams.append(key, value);
  }
  if (position && !positionInUrl) {
    url.searchParams.set("lat", position.lat);
    url.searchParams.set("lon", position.lon);
  }
  return url.toString();
}

const locateButton = document.getElementById("locate");
/** Set while a new position should replace the running session at once. */
let relocating = false;

/** Follows the consented position: a move goes to the node on the control channel (it moves
 * the viewer at the next keyframe); a session without one reconnects with the position. */
function follow() {
  followPosition((found) => {
    if (position && position.lat === found.lat && position.lon === found.lon) return;
    const first = !position;
    position = found;
    const control = session?.control;
    if (control) {
      control.position(found.lat, found.lon);
    } else if (first && session) {
      relocating = true;
      session.close();
    }
  });
}

async function offerLocation() {
  if (positionInUrl) return;
  const state = await permission();
  if (state === "granted") {
    position = await currentPosition();
    follow();
  } else if (state === "prompt") {
    locateButton.hidden = false;
    locateButton.addEventListener("click", async () => {
      locateButton.disabled = true;
      const found = await currentPosition();
      locateButton.hidden = true;
      if (!found) return;
      position = found;
      const control = session?.control;
      if (control) {
        control.position(found.lat, found.lon);
      } else {
        // Not connected yet (or no control channel): connect again with the position in the URL.
        relocating = true;
        session?.close();
      }
      follow();
    });
  }
}

/** Where WebTransport is missing (every iOS browser), or `?transport=websocket` asks for it:
 * the WebSocket fallback on the same port, `wss:` from an HTTPS page. */
function webSocketUrl() {
  if (typeof WebTransport !== "undefined" && pageQuery.get("transport") !== "websocket") return undefined;
  return nodeUrl(location.protocol === "https:" ? "wss:" : "ws:");
}

const TITLES = {
  connecting: "Connecting…",
  waiting: "Waiting for the picture…",
  playing: "Playing",
  stalled: "No picture from the node",
  refused: "The node refused this viewer",
  reconnecting: "Reconnecting…",
  unsupported: "This browser cannot play this stream",
};

// A phone must not dim and lock while someone watches; released whenever the picture stops.
let wakeLock;
async function holdScreenAwake(hold) {
  try {
    if (hold && !wakeLock && document.visibilityState === "visible" && navigator.wakeLock) {
      wakeLock = await navigator.wakeLock.request("screen");
      wakeLock.addEventListener("release", () => (wakeLock = undefined));
    } else if (!hold && wakeLock) {
      await wakeLock.release();
    }
  } catch {
    // Refused (battery saver, no user activation yet): the screen just follows its settings.
  }
}
document.addEventListener("visibilitychange", () => holdScreenAwake(state === "playing"));

function setState(next, text = "") {
  if (next !== state) holdScreenAwake(next === "playing");
  state = next;
  detail = text;
  statusBox.dataset.state = next;
  statusTitle.textContent = TITLES[next] ?? next;
  statusDetail.textContent = text;
  document.title = next === "playing" ? "Live" : `Live: ${TITLES[next] ?? next}`;
}

/** A plain-HTTP page pins the node's short-lived self-signed certificate by its hash; an HTTPS
 * page was served with a certificate the browser already trusts, which QUIC then uses too. */
async function certificateHash() {
  if (location.protocol === "https:") return undefined;
  const response = await fetch("/certificate.sha256", { cache: "no-store" });
  if (!response.ok) throw new Error(`/certificate.sha256 answered ${response.status}`);
  return (await response.text()).trim();
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function backoffMs(n) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** n);
  // ±20% so a node restart is not met by every phone at the same instant.
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

async function countdown(ms, render) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    render(Math.ceil((end - performance.now()) / 1000));
    await sleep(Math.min(250, end - performance.now()));
  }
}

async function run() {
  await offerLocation();
  if (typeof VideoDecoder === "undefined") {
    const secure = window.isSecureContext ? "" : " (this page is not a secure context: open it over HTTPS or on localhost)";
    setState("unsupported", `WebCodecs missing${secure}.`);
    return;
  }
  for (;;) {
    const started = performance.now();
    let retryDetail;
    gestures.reset();
    overlayLayer.clear();
    session = new Session(
      canvas,
      {
        onState: (next, text) => setState(next, text),
        onVideo: () => renderStats(),
        onOverlays: (layout) => overlayLayer.show(layout),
      },
      { bufferMs },
    );
    try {
      const webSocket = webSocketUrl();
      const hash = webSocket ? undefined : await certificateHash();
      await session.run(nodeUrl("https:"), hash, webSocket);
    } catch (error) {
      session.close();
      if (relocating) {
        relocating = false;
        attempt = 0;
        continue;
      }
      if (performance.now() - started > HEALTHY_SESSION_MS && !(error instanceof Refused)) attempt = 0;
      // Sentences end with one full stop, whoever wrote the first half.
      const sentence = (text) => String(text).replace(/[.\s]+$/, "");
      if (error instanceof Refused) {
        lastRefusal = error.reason;
        retryDetail = (s) => `${sentence(error.reason || "no reason given")}. Trying again in ${s} s.`;
      } else if (error instanceof Closed && error.reason) {
        retryDetail = (s) => `The node closed the session: ${sentence(error.reason)}. Trying again in ${s} s.`;
      } else {
        retryDetail = (s) => `${sentence(error?.message ?? error)}. Trying again in ${s} s.`;
      }
      const wait = backoffMs(attempt);
      attempt += 1;
      const next = error instanceof Refused ? "refused" : "reconnecting";
      await countdown(wait, (s) => setState(next, retryDetail(s)));
    }
  }
}

// Stall watch and stats refresh.
let lastDrawn = 0;
let lastTick = performance.now();
let fps = 0;
setInterval(() => {
  const now = performance.now();
  if (session) {
    const drawn = session.stats.drawn;
    fps = drawn >= lastDrawn ? ((drawn - lastDrawn) * 1000) / (now - lastTick) : 0;
    lastDrawn = drawn;
    const since = session.sinceLastDrawMs();
    if (state === "playing" && since > STALL_MS) {
      setState("stalled", "Still connected; the node keeps this session and the picture resumes when its upstream returns.");
    } else if (state === "stalled" && since < STALL_MS) {
      setState("playing");
    }
  }
  lastTick = now;
  renderStats();
}, 500);

function ms(value) {
  return value === undefined ? "–" : `${value.toFixed(1)} ms`;
}

function renderStats() {
  if (statsPanel.hidden || !session) return;
  const s = session.stats;
  const info = session.info;
  const where = position && !positionInUrl ? `${position.lat},${position.lon}` : undefined;
  const asked = pageQuery.get("zone");
  const zone = info.zone ?? (asked ? `${asked} (asked)` : "chosen by the node");
  const rows = [
    ["state", state],
    ["SEI→decoded p50/p99", `${ms(s.seiToDecoded.percentile(50))} / ${ms(s.seiToDecoded.percentile(99))}`],
    ["SEI→drawn p50/p99", `${ms(s.seiToDrawn.percentile(50))} / ${ms(s.seiToDrawn.percentile(99))}`],
    ["fps", fps.toFixed(1)],
    ["rendering", info.rendering ?? "–"],
    ["decode", `${info.codec ?? "–"} · WebCodecs → canvas${bufferMs ? ` · +${bufferMs} ms` : ""}`],
    ["zone", zone],
    ["position", where ?? (positionInUrl ? "from the URL" : "not shared")],
    ["resolution", info.width ? `${info.width}×${info.height}` : "–"],
    ["moq", `${info.version ?? "–"} · ${info.transport ?? "–"}`],
    ["view", viewText(gestures.view, session.control?.sent ?? 0)],
    ["dropped", `${s.droppedLate} late · ${s.droppedQueue + s.skippedToKeyframe} behind · ${s.decodeErrors} errors`],
  ];
  statsPanel.replaceChildren(
    ...rows.flatMap(([key, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

function viewText(view, sent) {
  const zoom = view.w >= 0.999 ? "whole picture" : `${(1 / view.w).toFixed(1)}× at ${view.x.toFixed(2)},${view.y.toFixed(2)}`;
  return `${zoom} · ${sent} sent`;
}

function showStats(visible) {
  statsPanel.hidden = !visible;
  statsToggle.setAttribute("aria-expanded", String(visible));
  renderStats();
}
statsToggle.addEventListener("click", () => showStats(statsPanel.hidden));
showStats(pageQuery.has("stats"));

function summary(samples) {
  return { count: samples.count, p50: samples.percentile(50), p99: samples.percentile(99), max: samples.percentile(100) };
}

// Read-only view for tests and for anyone debugging from the console.
window.edgeViewer = {
  get state() {
    return state;
  },
  get detail() {
    return detail;
  },
  get refusal() {
    return lastRefusal;
  },
  resetStats() {
    session?.resetStats();
  },
  stats() {
    if (!session) return undefined;
    const s = session.stats;
    return {
      state,
      seconds: (performance.now() - s.since) / 1000,
      received: s.received,
      decoded: s.decoded,
      drawn: s.drawn,
      shownTimestampUs: s.shownTimestampUs,
      droppedLate: s.droppedLate,
      droppedQueue: s.droppedQueue,
      skippedToKeyframe: s.skippedToKeyframe,
      decodeErrors: s.decodeErrors,
      seiToReceivedMs: summary(s.seiToReceived),
      seiToDecodedMs: summary(s.seiToDecoded),
      seiToDrawnMs: summary(s.seiToDrawn),
      seiToPaintedMs: summary(s.seiToPainted),
      drawnSeiUs: s.drawnSei.slice(),
      video: { ...session.info },
      view: gestures.view,
      position,
      controlSent: session.control?.sent ?? 0,
    };
  },
  /** The overlays drawn on the picture shown now, as the node described them. */
  get overlays() {
    return overlayLayer.layout;
  },
  /** Every `edge-node:buy` event's detail this page raised. */
  get buys() {
    return buys.slice();
  },
};

run();
