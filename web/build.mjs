// Bundles the viewer page into dist/ (what the node serves at /) and the third-party player test
// page into test/.build/. Run by scripts/setup-web.sh after `npm ci`; nothing is fetched at run
// time, and a clean `cargo build` does not need any of this.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
const testBuild = join(root, "test", ".build");

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  // Chromium 120+, Safari 17+: WebTransport and WebCodecs are newer than that anyway.
  target: ["chrome120", "safari17", "firefox120"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await esbuild.build({ ...common, entryPoints: [join(root, "src", "main.js")], outfile: join(dist, "viewer.js") });
for (const file of ["index.html", "viewer.css"]) {
  await copyFile(join(root, "src", file), join(dist, file));
}

// The published @moq/watch element, for the test that the wire still plays in a player we did
// not write.
await rm(testBuild, { recursive: true, force: true });
await mkdir(testBuild, { recursive: true });
await esbuild.build({ ...common, minify: false, sourcemap: false, entryPoints: [join(root, "test", "watch-entry.js")], outfile: join(testBuild, "watch.js") });
await copyFile(join(root, "test", "watch.html"), join(testBuild, "watch.html"));

console.log(`built ${dist} and ${testBuild}`);
