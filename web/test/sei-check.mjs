// Reads access units (one hex string per line) and prints, per line, the frame-clock time the
// page's SEI parser finds in it, or "none": the Rust test feeds it units stamped by the node's
// own writer (edge-core sei.rs), so the page and the node agree on the layout byte for byte.
import { readFileSync } from "node:fs";

import { frameClockUs } from "../src/sei.js";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean);
for (const line of lines) {
  const bytes = Uint8Array.from(line.match(/../g).map((h) => parseInt(h, 16)));
  const time = frameClockUs(bytes);
  console.log(time === undefined ? "none" : String(time));
}
