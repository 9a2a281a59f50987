// Touch, mouse and wheel on the picture, turned into control messages: pinch and wheel zoom
// around the fingers or the pointer, drag pans a zoomed picture, a tap is a `tap` (the node
// hit-tests its overlays; the page does too, for the buy button), a double tap goes back to the
// whole picture.
//
// The page keeps the view rectangle it asked for, in fractions of the source picture, square in
// fractions so it has the source's (and the output's) aspect ratio: the node then shows exactly
// that region, and a point on screen maps to a point of the source without asking the node.

import { round } from "./control.js";

/** The node's default `max_zoom` is 4: a narrower view would be widened by the node. */
const MIN_VIEW = 1 / 4;
/** Movement below this (CSS pixels) is still a tap. */
const TAP_SLOP_PX = 10;
const TAP_MAX_MS = 350;
/** A second tap this soon and this close is a double tap. */
const DOUBLE_TAP_MS = 300;
const DOUBLE_TAP_PX = 40;
/** Wheel delta (pixels) that doubles or halves the view. */
const WHEEL_DOUBLING_PX = 400;

export class Gestures {
  #canvas;
  #control;
  #view = { x: 0, y: 0, w: 1 };
  #pointers = new Map();
  #pinch;
  #lastTap;
  #onTap;

  /** `control()` returns the current session's ControlChannel, or undefined; `onTap(u, v)` is
   * told of each tap (picture fractions) before anything else, and says whether the tap landed
   * on an overlay that answers taps. */
  constructor(canvas, control, onTap) {
    this.#canvas = canvas;
    this.#control = control;
    this.#onTap = onTap;
    canvas.addEventListener("pointerdown", (e) => this.#down(e));
    canvas.addEventListener("pointermove", (e) => this.#move(e));
    canvas.addEventListener("pointerup", (e) => this.#up(e));
    canvas.addEventListener("pointercancel", (e) => this.#pointers.delete(e.pointerId));
    canvas.addEventListener("wheel", (e) => this.#wheel(e), { passive: false });
  }

  /** A new session starts at the whole picture. */
  reset() {
    this.#view = { x: 0, y: 0, w: 1 };
    this.#pointers.clear();
    this.#pinch = undefined;
  }

  get view() {
    return { ...this.#view };
  }

  /** Where a client point falls on the picture (fractions), inside the letterbox, or undefined. */
  #pictureFraction(clientX, clientY) {
    const box = this.#canvas.getBoundingClientRect();
    const { width, height } = this.#canvas;
    if (!width || !height || !box.width || !box.height) return undefined;
    const scale = Math.min(box.width / width, box.height / height);
    const shownW = width * scale;
    const shownH = height * scale;
    const left = box.left + (box.width - shownW) / 2;
    const top = box.top + (box.height - shownH) / 2;
    const u = (clientX - left) / shownW;
    const v = (clientY - top) / shownH;
    return u >= 0 && u <= 1 && v >= 0 && v <= 1 ? { u, v, shownW, shownH } : undefined;
  }

  /** Zooms to view width `w`, keeping the source point under picture fraction (u, v) in place. */
  #zoomAround(w, u, v) {
    const view = this.#view;
    const next = Math.min(1, Math.max(MIN_VIEW, w));
    const sx = view.x + u * view.w;
    const sy = view.y + v * view.w;
    this.#setView(sx - u * next, sy - v * next, next);
  }

  #setView(x, y, w) {
    const clamp = (value) => Math.min(1 - w, Math.max(0, value));
    this.#view = { x: clamp(x), y: clamp(y), w };
    const control = this.#control();
    if (!control) return;
    if (w >= 0.999) {
      control.zoom(undefined);
    } else {
      const size = round(w);
      control.zoom({ x: round(this.#view.x), y: round(this.#view.y), w: size, h: size });
    }
  }

  #down(event) {
    this.#canvas.setPointerCapture?.(event.pointerId);
    this.#pointers.set(event.pointerId, {
      startX: event.clientX,
      startY: event.clientY,
      x: event.clientX,
      y: event.clientY,
      at: performance.now(),
      moved: false,
    });
    if (this.#pointers.size === 2) {
      const [a, b] = [...this.#pointers.values()];
      this.#pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), view: this.#view.w };
      for (const p of this.#pointers.values()) p.moved = true;
    }
  }

  #move(event) {
    const pointer = this.#pointers.get(event.pointerId);
    if (!pointer) return;
    const dx = event.clientX - pointer.x;
    const dy = event.clientY - pointer.y;
    pointer.x = event.clientX;
    pointer.y = event.clientY;
    if (Math.hypot(pointer.x - pointer.startX, pointer.y - pointer.startY) > TAP_SLOP_PX) pointer.moved = true;
    if (this.#pinch && this.#pointers.size >= 2) {
      const [a, b] = [...this.#pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      const at = this.#pictureFraction((a.x + b.x) / 2, (a.y + b.y) / 2);
      if (at && distance > 0 && this.#pinch.distance > 0) {
        this.#zoomAround((this.#pinch.view * this.#pinch.distance) / distance, at.u, at.v);
      }
    } else if (pointer.moved && this.#view.w < 1) {
      const at = this.#pictureFraction(pointer.x, pointer.y);
      if (!at) return;
      // Dragging the picture right shows what lies to its left.
      const view = this.#view;
      this.#setView(view.x - (dx / at.shownW) * view.w, view.y - (dy / at.shownH) * view.w, view.w);
    }
  }

  #up(event) {
    const pointer = this.#pointers.get(event.pointerId);
    this.#pointers.delete(event.pointerId);
    if (this.#pointers.size < 2) this.#pinch = undefined;
    if (!pointer || pointer.moved || performance.now() - pointer.at > TAP_MAX_MS) return;
    const at = this.#pictureFraction(event.clientX, event.clientY);
    if (!at) return;
    const now = performance.now();
    // A tap on something that answers taps (a card, its buy button) is never half of a double
    // tap: a viewer who taps a card and then, quickly, its buy button means to buy.
    const onOverlay = this.#onTap?.(at.u, at.v) ?? false;
    const last = this.#lastTap;
    if (!onOverlay && last && now - last.at < DOUBLE_TAP_MS && Math.hypot(event.clientX - last.x, event.clientY - last.y) < DOUBLE_TAP_PX) {
      this.#lastTap = undefined;
      this.#setView(0, 0, 1);
      return;
    }
    this.#lastTap = onOverlay ? undefined : { at: now, x: event.clientX, y: event.clientY };
    // Sent at once, not after the double-tap window: an expanded card must answer within frames.
    this.#control()?.tap(at.u, at.v);
  }

  #wheel(event) {
    const at = this.#pictureFraction(event.clientX, event.clientY);
    if (!at) return;
    event.preventDefault();
    const pixels = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    this.#zoomAround(this.#view.w * 2 ** (pixels / WHEEL_DOUBLING_PX), at.u, at.v);
  }
}
