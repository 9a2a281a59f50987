// Reads one case per line, `{"message": <overlays message>, "probe": [u, v]}`, and prints per
// line what the page makes of it: `{"layout": <parseLayout's result or null>, "hit": {"id",
// "part"} or null}` (the probe hit-tested against that layout). The Rust test feeds it the
// messages a real node sent, and hostile ones, so the page and the node agree on the schema.
import { readFileSync } from "node:fs";

import { hitTest, parseLayout } from "../src/overlays.js";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean);
for (const line of lines) {
  const { message, probe } = JSON.parse(line);
  const layout = parseLayout(message) ?? null;
  const hit = probe && layout ? hitTest(layout, probe[0], probe[1]) : undefined;
  console.log(JSON.stringify({ layout, hit: hit ? { id: hit.overlay.id, part: hit.part } : null }));
}
