// The viewer → node control channel (README "Control channel"): the page publishes the
// broadcast `control` with one track, `commands`, one JSON object per group. The node drops
// anything beyond 60 messages a second; the page stays well under that by sending at most one
// message per MIN_INTERVAL_MS, and a zoom gesture only ever sends its latest rectangle.

import * as Moq from "@moq/net";

export const CONTROL_BROADCAST = "control";
export const CONTROL_TRACK = "commands";
/** 30 messages a second at most: half the node's limit, and more than a 60 Hz pinch needs. */
const MIN_INTERVAL_MS = 34;
/** Taps queued while rate-limited; older ones are dropped (a tap is only meaningful now). */
const MAX_QUEUED_TAPS = 4;

export class ControlChannel {
  #track;
  #broadcast;
  #zoom;
  #position;
  #taps = [];
  #lastSentMs = -Infinity;
  #timer;
  /** Every message written, for the stats and the tests. */
  sent = 0;

  constructor(connection) {
    this.#broadcast = new Moq.Broadcast.Producer();
    this.#track = this.#broadcast.createTrack(CONTROL_TRACK);
    connection.publish(Moq.Path.from(CONTROL_BROADCAST), this.#broadcast);
  }

  /** A zoom rectangle in source fractions, or `undefined` for the whole picture. */
  zoom(rect) {
    this.#zoom = rect ? { type: "zoom", ...rect } : { type: "zoom", reset: true };
    this.#flush();
  }

  /** A tap at fractions of the frame the viewer sees. */
  tap(x, y) {
    this.#taps.push({ type: "tap", x: round(x), y: round(y) });
    if (this.#taps.length > MAX_QUEUED_TAPS) this.#taps.shift();
    this.#flush();
  }

  /** Where the viewer is now (WGS 84 degrees); only the latest is sent. */
  position(lat, lon) {
    this.#position = { type: "position", lat: Number(lat), lon: Number(lon) };
    this.#flush();
  }

  close() {
    clearTimeout(this.#timer);
    this.#broadcast.close();
  }

  #flush() {
    clearTimeout(this.#timer);
    // Taps first: they are aimed at what is on screen now, which a pending zoom will change.
    while (this.#zoom || this.#position || this.#taps.length > 0) {
      const now = performance.now();
      const wait = this.#lastSentMs + MIN_INTERVAL_MS - now;
      if (wait > 0) {
        this.#timer = setTimeout(() => this.#flush(), wait);
        return;
      }
      const message = this.#taps.shift() ?? this.#zoom ?? this.#position;
      if (message === this.#zoom) this.#zoom = undefined;
      if (message === this.#position) this.#position = undefined;
      this.#track.writeString(JSON.stringify(message));
      this.#lastSentMs = now;
      this.sent += 1;
    }
  }
}

/** Four decimals, rounded down so `x + w` never exceeds 1 by rounding. */
export function round(value) {
  return Math.floor(value * 10_000) / 10_000;
}
