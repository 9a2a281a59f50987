// One viewing session: WebTransport to the node (certificate pinned by hash), moq-lite through
// @moq/net, the hang catalog and legacy container through @moq/hang, and decoding with WebCodecs
// here rather than in a player with a jitter buffer: on an edge site the network adds a few
// milliseconds, so every frame is drawn as soon as it is due (by default, as soon as it is
// decoded). The frame-clock SEI in every access unit gives the page its own latency figures.

import * as Catalog from "@moq/hang/catalog";
import * as Container from "@moq/hang/container";
import * as Moq from "@moq/net";
import QmuxSession from "@moq/qmux";

import { ControlChannel } from "./control.js";
import { LayoutTimeline, OVERLAYS_TRACK, parseLayout } from "./overlays.js";
import { frameClockUs } from "./sei.js";

/** The broadcast every viewer subscribes to; the node serves each session its own rendering. */
const BROADCAST = "live";
/** WebTransport/QUIC close code the node uses for a refused viewer; the reason says why. */
export const CLOSE_CODE_REFUSED = 403;
/** moq-lite versions offered as WebTransport sub-protocols, newest first (as @moq/net does). */
const PROTOCOLS = ["moq-lite-05", "moq-lite-04", "moq-lite-03", "moql"];
/** A group older than this behind a newer one is skipped instead of played late. It is not a
 * buffer: frames of the current group are handed over as they arrive. */
const GROUP_SKIP_MS = 150;
/** Frames waiting for the decoder (a second at 30 fps) beyond which delta frames are dropped
 * until the next keyframe: a decoder that cannot keep up must not build a queue of stale
 * pictures, but a short stall of the page (a busy phone) is better caught up than frozen for
 * the rest of a GOP. */
const MAX_DECODE_QUEUE = 30;
/** Latency samples kept for the figures (about a minute at 30 fps). */
const SAMPLE_CAPACITY = 2048;
/** How long the page waits for the transport to report its close reason after a failure. */
const CLOSE_INFO_WAIT_MS = 1000;

/** Wall-clock now in microseconds since the epoch, sub-millisecond where the browser allows. */
export function wallNowUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** A bounded window of samples with percentiles. */
export class Samples {
  #values = [];
  push(value) {
    if (this.#values.length >= SAMPLE_CAPACITY) this.#values.shift();
    this.#values.push(value);
  }
  clear() {
    this.#values.length = 0;
  }
  get count() {
    return this.#values.length;
  }
  values() {
    return this.#values.slice();
  }
  percentile(p) {
    if (this.#values.length === 0) return undefined;
    const sorted = this.#values.slice().sort((a, b) => a - b);
    const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[rank];
  }
}

/** Thrown when the node refused this viewer; `reason` is the node's own words. */
export class Refused extends Error {
  constructor(reason) {
    super(reason || "refused by the node");
    this.reason = reason;
  }
}

/** Thrown when the session ended; `reason` is the close reason if the node gave one. */
export class Closed extends Error {
  constructor(message, code, reason) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

function hexToBytes(hex) {
  const clean = hex.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(clean)) throw new Error("the node's certificate hash is not 64 hex digits");
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function openWebTransport(url, certificateSha256) {
  const options = {
    protocols: PROTOCOLS,
    congestionControl: "low-latency",
    allowPooling: false,
  };
  if (certificateSha256) {
    options.serverCertificateHashes = [{ algorithm: "sha-256", value: hexToBytes(certificateSha256) }];
  }
  return new WebTransport(url, options);
}

function openWebSocket(url) {
  // As @moq/net offers them: each moq-lite version under every qmux draft the library knows.
  const versions = Object.fromEntries(PROTOCOLS.map((protocol) => [protocol, null]));
  return new QmuxSession(url, { protocols: PROTOCOLS, versions });
}

/**
 * Plays one session until it ends, then throws {@link Refused} or {@link Closed}.
 *
 * `callbacks.onState(state, detail)` reports "connecting", "waiting" (connected, no picture
 * yet or none for a while) and "playing"; `callbacks.onVideo(info)` the catalog's video.
 */
export class Session {
  #canvas;
  #context;
  #callbacks;
  #bufferMs;
  #transport;
  #connection;
  #decoder;
  #decoderCodec;
  #needKeyframe = true;
  // Why this session cannot play (a codec the browser lacks), once known.
  #unsupported;
  // SEI times of frames inside the decoder, by media timestamp (µs).
  #inFlight = new Map();
  // Decoded frames not yet due, oldest first.
  #pending = [];
  #drawTimer;
  // Smallest (arrival wall time - media time) recently seen: the schedule frames are due on.
  #offsetWindow = [];
  #closed = false;
  #lastDrawUs = 0;
  #paintRequested = false;
  #awaitingPaint = [];
  // Overlay layouts waiting for the frame they describe.
  #layouts = new LayoutTimeline();

  /** Latency figures, in milliseconds, and counters since the last {@link resetStats}. */
  stats = {
    seiToReceived: new Samples(),
    seiToDecoded: new Samples(),
    seiToDrawn: new Samples(),
    seiToPainted: new Samples(),
    drawnSei: [],
    received: 0,
    decoded: 0,
    drawn: 0,
    /** The media timestamp of the picture on the canvas (µs). */
    shownTimestampUs: undefined,
    droppedLate: 0,
    droppedQueue: 0,
    skippedToKeyframe: 0,
    decodeErrors: 0,
    since: performance.now(),
  };
  /** The overlays drawn on the picture shown now (see overlays.js), once known. */
  get overlays() {
    return this.#layouts.current;
  }

  /** Zoom and tap commands to the node, once connected. */
  control;
  /** The negotiated moq version, the codec, the picture size. */
  info = { transport: undefined, version: undefined, codec: undefined, width: 0, height: 0, rendering: undefined, zone: undefined };

  constructor(canvas, callbacks, { bufferMs = 0 } = {}) {
    this.#canvas = canvas;
    // desynchronized: the canvas skips the compositor's extra frame of buffering where it can.
    this.#context = canvas.getContext("2d", { alpha: false, desynchronized: true });
    this.#callbacks = callbacks;
    this.#bufferMs = bufferMs;
  }

  resetStats() {
    const s = this.stats;
    for (const key of ["seiToReceived", "seiToDecoded", "seiToDrawn", "seiToPainted"]) s[key].clear();
    s.drawnSei = [];
    s.received = s.decoded = s.drawn = s.droppedLate = s.droppedQueue = s.skippedToKeyframe = s.decodeErrors = 0;
    s.since = performance.now();
  }

  /** Milliseconds since the last drawn frame, or Infinity before the first one. */
  sinceLastDrawMs() {
    return this.#lastDrawUs ? (wallNowUs() - this.#lastDrawUs) / 1000 : Infinity;
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#drawTimer);
    this.control?.close();
    for (const { frame } of this.#pending) frame.close();
    this.#pending = [];
    try {
      this.#connection?.close();
    } catch {
      // Already closed.
    }
    try {
      this.#transport?.close();
    } catch {
      // Already closed.
    }
    if (this.#decoder && this.#decoder.state !== "closed") this.#decoder.close();
  }

  /**
   * Connects and plays; resolves never, rejects with Refused or Closed. `webSocketUrl` set means
   * WebTransport is missing (every iOS browser) or not wanted: moq's qmux protocol over a
   * WebSocket on the same host and port, which offers the same `closed` info as WebTransport.
   */
  async run(nodeUrl, certificateSha256, webSocketUrl) {
    this.#callbacks.onState("connecting");
    let transport;
    try {
      transport = webSocketUrl ? openWebSocket(webSocketUrl) : openWebTransport(nodeUrl, certificateSha256);
    } catch (e) {
      throw new Closed(`cannot open ${webSocketUrl ?? nodeUrl}: ${e.message}`);
    }
    this.info.transport = webSocketUrl ? "WebSocket (qmux)" : "WebTransport";
    this.#transport = transport;
    // Settles with the node's code and reason when it closes the session, rejects on a
    // connection failure; read once the session has failed.
    const closeInfo = transport.closed.then(
      (info) => ({ code: info?.closeCode, reason: info?.reason ?? "" }),
      (error) => ({ code: error?.streamErrorCode ?? undefined, reason: undefined, error }),
    );
    try {
      await transport.ready;
      this.#connection = await Moq.Connection.connect(new URL(nodeUrl), {
        transport,
        websocket: { enabled: false },
      });
      this.info.version = this.#connection.version;
      this.control = new ControlChannel(this.#connection);
      this.#callbacks.onState("waiting", "connected, waiting for the first picture");
      await Promise.race([this.#play(this.#connection), this.#connection.closed]);
      throw new Error("the session ended");
    } catch (error) {
      if (this.#closed) throw new Closed("closed by the page");
      const timeout = new Promise((resolve) => setTimeout(() => resolve(undefined), CLOSE_INFO_WAIT_MS));
      const info = await Promise.race([closeInfo, timeout]);
      if (info?.code === CLOSE_CODE_REFUSED) throw new Refused(info.reason);
      if (info && info.reason !== undefined && info.code !== undefined) {
        throw new Closed(`the node closed the session (code ${info.code})`, info.code, info.reason);
      }
      throw new Closed(info?.error?.message || error?.message || String(error));
    }
  }

  async #play(connection) {
    // The node announces this viewer's `live` once its rendering has reached a keyframe; until
    // then (and while it is away) the session stays up and the page waits.
    const announced = connection.announcedBroadcast(Moq.Path.from(BROADCAST));
    try {
      for (;;) {
        let broadcast = announced.active.peek();
        while (!broadcast) broadcast = await announced.active.changed();
        const gone = (async () => {
          while (announced.active.peek() === broadcast) await announced.active.changed();
        })();
        await this.#playBroadcast(broadcast, gone);
        this.#callbacks.onState("waiting", "the node stopped this broadcast; waiting for it to return");
      }
    } finally {
      announced.close();
    }
  }

  /** Plays one announcement of the broadcast until it ends or `gone` settles. */
  async #playBroadcast(broadcast, gone) {
    let stopped = false;
    const catalogTrack = broadcast.subscribe(Catalog.TRACK, { priority: Catalog.PRIORITY.catalog });
    const overlaysTrack = broadcast.subscribe(OVERLAYS_TRACK, { priority: Catalog.PRIORITY.catalog });
    let consumer;
    void gone.then(() => {
      stopped = true;
      catalogTrack.close();
      overlaysTrack.close();
      consumer?.close();
    });
    this.#layouts.clear();
    void this.#readOverlays(overlaysTrack);
    const first = await Promise.race([this.#readCatalog(catalogTrack), gone.then(() => undefined)]);
    if (!first || stopped) return;
    const { name, config, edge } = first;
    // Later catalogs (a move to a rendering of another size) only update what the page shows;
    // the stream's in-band SPS reconfigures the decoder at the keyframe that brings them.
    void (async () => {
      while (!stopped) {
        const next = await this.#readCatalog(catalogTrack).catch(() => undefined);
        if (!next) return;
        this.#applyConfig(next.config, next.edge);
      }
    })();
    this.#applyConfig(config, edge);
    const track = broadcast.subscribe(name, { priority: Catalog.PRIORITY.video });
    consumer = new Container.Consumer(track, {
      format: new Container.Legacy.Format(),
      latency: GROUP_SKIP_MS,
    });
    try {
      while (!stopped) {
        const next = await consumer.next();
        if (!next) return;
        if (!next.frame) continue;
        this.#receive(next.frame);
      }
    } finally {
      consumer.close();
      catalogTrack.close();
      overlaysTrack.close();
    }
  }

  /** Each layout waits for the frame of its time (one message per group; a bad one is skipped). */
  async #readOverlays(track) {
    try {
      for (;;) {
        const group = await track.recvGroup();
        if (!group) return;
        const frame = await group.readFrame();
        group.close?.();
        if (!frame) continue;
        let layout;
        try {
          layout = parseLayout(JSON.parse(new TextDecoder().decode(frame.payload)));
        } catch {
          layout = undefined;
        }
        if (layout) this.#layouts.push(frame.timestamp.asMicros(), layout);
        else console.warn("an overlays message the page does not understand was skipped");
      }
    } catch {
      // The track ends with the broadcast; the video's end is what the page reports.
    }
  }

  async #readCatalog(track) {
    const json = await track.readJson();
    if (json === undefined) throw new Error("the catalog track ended");
    const parsed = Catalog.RootSchema.safeParse(json);
    if (!parsed.success) throw new Error(`the node's catalog is not a hang catalog: ${parsed.error.message}`);
    const renditions = parsed.data.video?.renditions ?? {};
    const entry = Object.entries(renditions)[0];
    if (!entry) throw new Error("the node's catalog has no video");
    const [name, config] = entry;
    return { name, config, edge: json.edge };
  }

  #applyConfig(config, edge) {
    this.info.codec = config.codec;
    // Optional section a node may add beside hang's own (the root is a loose object): which
    // rendering this viewer receives and the zone it was placed in.
    if (edge && typeof edge === "object") {
      this.info.rendering = typeof edge.rendering === "string" ? edge.rendering : undefined;
      this.info.zone = typeof edge.zone === "string" ? edge.zone : undefined;
    }
    if (config.codedWidth && config.codedHeight) {
      this.info.width = config.codedWidth;
      this.info.height = config.codedHeight;
    }
    this.#callbacks.onVideo?.(this.info);
  }

  #ensureDecoder() {
    const codec = this.info.codec;
    if (this.#decoder && this.#decoder.state === "configured" && this.#decoderCodec === codec) return;
    if (this.#decoder && this.#decoder.state !== "closed") this.#decoder.close();
    this.#decoder = new VideoDecoder({
      output: (frame) => this.#decoded(frame),
      error: (error) => {
        this.stats.decodeErrors += 1;
        console.warn("video decoder error", error);
        // A codec this browser lacks will not decode at the next keyframe either.
        if (error?.name === "NotSupportedError") this.#unsupported = `this browser cannot decode ${codec}`;
        // The next keyframe starts a fresh decoder.
        this.#needKeyframe = true;
      },
    });
    // avc3: parameter sets travel in band on every IDR, so no description is given.
    try {
      this.#decoder.configure({
        codec,
        optimizeForLatency: true,
        hardwareAcceleration: "no-preference",
      });
    } catch (error) {
      // Ends the session with a reason the page shows, instead of dropping every frame quietly.
      throw new Error(`this browser cannot decode ${codec}: ${error.message}`);
    }
    this.#decoderCodec = codec;
    this.#inFlight.clear();
  }

  #receive(frame) {
    if (this.#unsupported) throw new Error(this.#unsupported);
    const nowUs = wallNowUs();
    const seiUs = frameClockUs(frame.payload);
    this.stats.received += 1;
    if (seiUs !== undefined) this.stats.seiToReceived.push((nowUs - seiUs) / 1000);
    this.#noteArrival(nowUs, frame.timestamp);
    if (frame.keyframe) {
      this.#needKeyframe = false;
      this.#ensureDecoder();
    } else if (this.#needKeyframe) {
      this.stats.skippedToKeyframe += 1;
      return;
    }
    if (this.#decoder.state !== "configured") {
      this.#needKeyframe = true;
      return;
    }
    if (!frame.keyframe && this.#decoder.decodeQueueSize > MAX_DECODE_QUEUE) {
      this.stats.droppedQueue += 1;
      this.#needKeyframe = true;
      return;
    }
    this.#inFlight.set(frame.timestamp, seiUs);
    if (this.#inFlight.size > 64) this.#inFlight.delete(this.#inFlight.keys().next().value);
    try {
      this.#decoder.decode(
        new EncodedVideoChunk({
          type: frame.keyframe ? "key" : "delta",
          timestamp: frame.timestamp,
          data: frame.payload,
        }),
      );
    } catch (error) {
      this.stats.decodeErrors += 1;
      console.warn("decode failed", error);
      this.#needKeyframe = true;
    }
  }

  // Tracks the earliest arrival relative to media time over the last ~5 s: a frame is due at
  // its media time on that schedule, plus the configured buffer.
  #noteArrival(nowUs, mediaUs) {
    this.#offsetWindow.push({ at: nowUs, offset: nowUs - mediaUs });
    while (this.#offsetWindow.length > 0 && nowUs - this.#offsetWindow[0].at > 5_000_000) {
      this.#offsetWindow.shift();
    }
    // The media clock restarting (a move to another rendering) must not hold frames back.
    const last = this.#offsetWindow[this.#offsetWindow.length - 1];
    this.#offsetWindow = this.#offsetWindow.filter((s) => Math.abs(s.offset - last.offset) < 2_000_000);
  }

  #dueUs(mediaUs) {
    let offset = Infinity;
    for (const s of this.#offsetWindow) offset = Math.min(offset, s.offset);
    if (!Number.isFinite(offset)) return 0;
    return mediaUs + offset + this.#bufferMs * 1000;
  }

  #decoded(frame) {
    const nowUs = wallNowUs();
    const seiUs = this.#inFlight.get(frame.timestamp);
    this.#inFlight.delete(frame.timestamp);
    this.stats.decoded += 1;
    if (seiUs !== undefined) this.stats.seiToDecoded.push((nowUs - seiUs) / 1000);
    if (this.#closed) {
      frame.close();
      return;
    }
    this.#pending.push({ frame, seiUs, dueUs: this.#dueUs(frame.timestamp) });
    this.#pending.sort((a, b) => a.frame.timestamp - b.frame.timestamp);
    this.#drawDue();
  }

  #drawDue() {
    clearTimeout(this.#drawTimer);
    const nowUs = wallNowUs();
    // Of everything due now only the newest is drawn: an older one would only be late.
    let due;
    while (this.#pending.length > 0 && this.#pending[0].dueUs <= nowUs + 1000) {
      if (due) {
        due.frame.close();
        this.stats.droppedLate += 1;
      }
      due = this.#pending.shift();
    }
    if (due) this.#draw(due, nowUs);
    if (this.#pending.length > 0) {
      const waitMs = Math.max(0, (this.#pending[0].dueUs - wallNowUs()) / 1000);
      this.#drawTimer = setTimeout(() => this.#drawDue(), waitMs);
    }
  }

  #draw({ frame, seiUs }, nowUs) {
    const canvas = this.#canvas;
    if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
      canvas.width = frame.displayWidth;
      canvas.height = frame.displayHeight;
      this.info.width = frame.displayWidth;
      this.info.height = frame.displayHeight;
      this.#callbacks.onVideo?.(this.info);
    }
    this.#context.drawImage(frame, 0, 0);
    this.stats.shownTimestampUs = frame.timestamp;
    const layout = this.#layouts.drawn(frame.timestamp);
    frame.close();
    if (layout) this.#callbacks.onOverlays?.(layout);
    const drawnUs = wallNowUs();
    const s = this.stats;
    s.drawn += 1;
    if (seiUs !== undefined) {
      s.seiToDrawn.push((drawnUs - seiUs) / 1000);
      if (s.drawnSei.length < SAMPLE_CAPACITY * 4) s.drawnSei.push(seiUs);
      this.#awaitingPaint.push(seiUs);
    }
    const first = this.#lastDrawUs === 0;
    this.#lastDrawUs = nowUs;
    if (first) this.#callbacks.onState("playing");
    // The next animation frame is when the browser composites what was drawn: a figure closer to
    // the screen than the draw call, reported beside it.
    if (!this.#paintRequested) {
      this.#paintRequested = true;
      requestAnimationFrame(() => {
        this.#paintRequested = false;
        const paintedUs = wallNowUs();
        for (const sei of this.#awaitingPaint) s.seiToPainted.push((paintedUs - sei) / 1000);
        this.#awaitingPaint = [];
      });
    }
  }
}
