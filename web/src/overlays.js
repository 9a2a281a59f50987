// The overlays the node drew on this viewer's picture, from the `overlays` track (README,
// "Overlays track"): each message says which overlays the rendering drew where, from the video
// frame whose time it carries. The page applies a layout when that frame is drawn, and uses it
//  - to hit-test taps here: a tap on an expanded card's button raises `edge-node:buy` (a shop
//    app embedding the page listens and opens its checkout);
//  - to give the overlays accessible form: a button (or labelled image) over each overlay, at
//    its rectangle, kept in step with the picture, and a live region that says what changed.

export const OVERLAYS_TRACK = "overlays";
/** Raised on the page (bubbling to `document` and `window`) when a card's buy button is tapped. */
export const BUY_EVENT = "edge-node:buy";

/** Layouts waiting for their frame, at most; the node sends one per change and per keyframe. */
const MAX_WAITING = 64;
/** What the page accepts from a message: a layout is a handful of overlays. */
const MAX_OVERLAYS = 32;
const MAX_TEXT = 2048;

function text(value) {
  return typeof value === "string" && value.length <= MAX_TEXT ? value : undefined;
}

function box(value) {
  if (!value || typeof value !== "object") return undefined;
  const { x, y, w, h } = value;
  const ok = [x, y, w, h].every((n) => Number.isFinite(n)) && w > 0 && h > 0;
  return ok ? { x, y, w, h } : undefined;
}

/** A message of the overlays track, checked; `undefined` when it is not one. */
export function parseLayout(json) {
  if (!json || typeof json !== "object") return undefined;
  const { width, height } = json;
  if (!(Number.isFinite(width) && Number.isFinite(height) && width > 0 && height > 0)) return undefined;
  if (!Array.isArray(json.overlays)) return undefined;
  const overlays = [];
  for (const raw of json.overlays.slice(0, MAX_OVERLAYS)) {
    const rect = box(raw);
    const id = text(raw?.id);
    if (!rect || !id) continue;
    const button = box(raw.button);
    overlays.push({
      id,
      kind: text(raw.kind) ?? "image",
      ...rect,
      label: text(raw.label),
      tap: text(raw.tap),
      expanded: raw.expanded === true,
      button: button && { ...button, label: text(raw.button.label) ?? "Buy" },
      product: raw.product && typeof raw.product === "object" ? { id: text(raw.product.id), link: text(raw.product.link) } : undefined,
    });
  }
  return { width, height, overlays };
}

/** Layouts by the media time (µs) they hold from; a drawn frame takes the newest at or before it. */
export class LayoutTimeline {
  #waiting = [];
  /** The layout of the frame drawn last. */
  current;

  push(atUs, layout) {
    let i = this.#waiting.length;
    while (i > 0 && this.#waiting[i - 1].atUs > atUs) i -= 1;
    this.#waiting.splice(i, 0, { atUs, layout });
    if (this.#waiting.length > MAX_WAITING) this.#waiting.shift();
  }

  /** The frame of media time `atUs` was drawn: the layout now in force when it changed. */
  drawn(atUs) {
    let next;
    while (this.#waiting.length > 0 && this.#waiting[0].atUs <= atUs) next = this.#waiting.shift();
    if (!next) return undefined;
    this.current = next.layout;
    return next.layout;
  }

  clear() {
    this.#waiting = [];
    this.current = undefined;
  }
}

function inside(r, x, y) {
  return x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
}

/** What the picture point (u, v) (fractions) hits in `layout`: the topmost overlay (drawn last),
 * and whether it is that overlay's button. */
export function hitTest(layout, u, v) {
  if (!layout) return undefined;
  const x = u * layout.width;
  const y = v * layout.height;
  for (let i = layout.overlays.length - 1; i >= 0; i -= 1) {
    const overlay = layout.overlays[i];
    if (overlay.button && inside(overlay.button, x, y)) return { overlay, part: "button" };
    if (inside(overlay, x, y)) return { overlay, part: "overlay" };
  }
  return undefined;
}

/** Raises the buy event for `overlay` on `target`; an embedding page (iframe) is told too. */
export function dispatchBuy(target, overlay) {
  const detail = {
    productId: overlay.product?.id,
    link: overlay.product?.link,
    overlay: overlay.id,
    label: overlay.label,
  };
  target.dispatchEvent(new CustomEvent(BUY_EVENT, { detail, bubbles: true, composed: true }));
  if (window.parent !== window) window.parent.postMessage({ type: BUY_EVENT, ...detail }, "*");
  return detail;
}

/** Where the picture is drawn inside the letterboxed canvas, in the stage's CSS pixels. */
function pictureBox(canvas) {
  const { width, height } = canvas;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!width || !height || !w || !h) return undefined;
  const scale = Math.min(w / width, h / height);
  return { left: canvas.offsetLeft + (w - width * scale) / 2, top: canvas.offsetTop + (h - height * scale) / 2, width: width * scale, height: height * scale };
}

function percent(value, of) {
  return `${((100 * value) / of).toFixed(3)}%`;
}

/**
 * Accessible overlays: over the picture, one element per overlay at its rectangle: a button for
 * one that answers a tap (a card expands; an expanded card's buy button buys), a labelled image
 * for the others. They take no pointer events (touches reach the picture, whose taps are
 * hit-tested against the same layout), but keyboards and screen readers can reach and press them.
 */
export class OverlayLayer {
  #canvas;
  #layer;
  #announcer;
  #actions;
  #layout;
  #announced = new Map();

  /** `actions.tap(u, v)` sends a tap to the node; `actions.buy(overlay)` raises the buy event. */
  constructor(stage, canvas, actions) {
    this.#canvas = canvas;
    this.#actions = actions;
    this.#layer = document.createElement("div");
    this.#layer.id = "overlays";
    this.#layer.setAttribute("role", "group");
    this.#layer.setAttribute("aria-label", "On the video");
    this.#announcer = document.createElement("p");
    this.#announcer.id = "overlay-news";
    this.#announcer.className = "visually-hidden";
    this.#announcer.setAttribute("aria-live", "polite");
    stage.append(this.#layer, this.#announcer);
    new ResizeObserver(() => this.#place()).observe(canvas);
    addEventListener("resize", () => this.#place());
  }

  get layout() {
    return this.#layout;
  }

  /** A new session: nothing is known to be drawn. */
  clear() {
    this.#layout = undefined;
    this.#announced.clear();
    this.#layer.replaceChildren();
  }

  /** The layout of the frame just drawn. */
  show(layout) {
    this.#layout = layout;
    const elements = [];
    for (const overlay of layout.overlays) {
      elements.push(this.#element(overlay, layout));
      if (overlay.button) elements.push(this.#buyButton(overlay, layout));
    }
    // A keyboard or screen reader user on an overlay stays on it when the layout changes.
    const focused = this.#layer.contains(document.activeElement) ? document.activeElement : undefined;
    this.#layer.replaceChildren(...elements);
    if (focused) {
      const same = elements.find((e) => e.dataset.overlay === focused.dataset.overlay && e.className === focused.className);
      same?.focus({ preventScroll: true });
    }
    this.#place();
    this.#announce(layout);
  }

  /** A tap on the picture at (u, v): the buy button of an expanded card buys. Returns whether
   * the tap landed on an overlay that answers taps (a card that expands, or a buy button). */
  tapped(u, v) {
    const hit = hitTest(this.#layout, u, v);
    if (hit?.part === "button") this.#actions.buy(hit.overlay);
    return hit?.part === "button" || hit?.overlay.tap === "expand";
  }

  #position(element, r, layout) {
    element.style.left = percent(r.x, layout.width);
    element.style.top = percent(r.y, layout.height);
    element.style.width = percent(r.w, layout.width);
    element.style.height = percent(r.h, layout.height);
  }

  #element(overlay, layout) {
    const name = overlay.label ?? overlay.id;
    let element;
    if (overlay.tap === "expand") {
      element = document.createElement("button");
      element.type = "button";
      element.setAttribute("aria-expanded", String(overlay.expanded));
      element.setAttribute("aria-label", overlay.expanded ? name : `${name} (show details)`);
      // Pressed from a keyboard or a screen reader: the same tap a finger would send.
      element.addEventListener("click", () => this.#actions.tap((overlay.x + overlay.w / 2) / layout.width, (overlay.y + overlay.h / 2) / layout.height));
    } else {
      element = document.createElement("div");
      element.setAttribute("role", "img");
      element.setAttribute("aria-label", name);
    }
    element.className = "overlay";
    element.dataset.overlay = overlay.id;
    element.dataset.kind = overlay.kind;
    this.#position(element, overlay, layout);
    return element;
  }

  #buyButton(overlay, layout) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "overlay overlay-buy";
    button.dataset.overlay = overlay.id;
    button.setAttribute("aria-label", `${overlay.button.label}: ${overlay.label ?? overlay.id}`);
    button.addEventListener("click", () => this.#actions.buy(overlay));
    this.#position(button, overlay.button, layout);
    return button;
  }

  /** Says what appeared or expanded, once per change, not at every keyframe's repeat. */
  #announce(layout) {
    const news = [];
    const seen = new Map();
    for (const overlay of layout.overlays) {
      const state = overlay.expanded ? "expanded" : "shown";
      seen.set(overlay.id, state);
      if (this.#announced.get(overlay.id) === state || !overlay.label) continue;
      news.push(overlay.expanded ? `${overlay.label}: details open${overlay.button ? `, ${overlay.button.label} button` : ""}` : overlay.label);
    }
    this.#announced = seen;
    if (news.length > 0) this.#announcer.textContent = news.join(". ");
  }

  /** Keeps the layer on the picture (the canvas letterboxes it). */
  #place() {
    const at = pictureBox(this.#canvas);
    this.#layer.hidden = !at || !this.#layout;
    if (!at) return;
    Object.assign(this.#layer.style, { left: `${at.left}px`, top: `${at.top}px`, width: `${at.width}px`, height: `${at.height}px` });
  }
}
