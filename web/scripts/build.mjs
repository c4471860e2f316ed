#!/usr/bin/env node
// Builds what the server embeds: the call page, the development sign-in and the dashboard, each a
// single bundled ES module (esbuild; the SDK from its sources, uPlot and socket.io-client from
// node_modules), with the pages and style sheets beside them.
//
//   node web/scripts/build.mjs [--outdir DIR]   (default web/dist)
//
// crates/wakili-server/build.rs runs it with --outdir in Cargo's OUT_DIR, so every cargo build
// embeds a bundle made from the sources it was built with.

import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const at = process.argv.indexOf("--outdir");
const outdir = at > 0 ? resolve(process.argv[at + 1]) : join(web, "dist");
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

await build({
  absWorkingDir: web,
  entryPoints: {
    call: "src/call/main.ts",
    login: "src/login/main.ts",
    dashboard: "src/dashboard/main.ts",
  },
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  legalComments: "eof",
  // The SDK from its TypeScript sources: no separate SDK build before this one.
  alias: { "@wakili/sdk": join(web, "../sdk/src/index.ts") },
  logLevel: "warning",
});

for (const file of readdirSync(join(web, "pages"))) {
  copyFileSync(join(web, "pages", file), join(outdir, file));
}
console.log(`built the web client into ${outdir}`);
