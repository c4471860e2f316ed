#!/usr/bin/env node
// Builds dist/: ES modules for browsers, React Native bundlers and Node (esbuild), and type
// declarations (tsc). Dependencies stay imports: the app's bundler resolves them.

import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const sdk = join(dirname(fileURLToPath(import.meta.url)), "..");
rmSync(join(sdk, "dist"), { recursive: true, force: true });

await build({
  absWorkingDir: sdk,
  entryPoints: ["src/index.ts", "src/react.ts"],
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  sourcemap: true,
  external: ["socket.io-client", "openapi-fetch", "react"],
  logLevel: "warning",
});

execFileSync(process.execPath, [join(sdk, "../node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
  cwd: sdk,
  stdio: "inherit",
});
console.log("built sdk/dist");
