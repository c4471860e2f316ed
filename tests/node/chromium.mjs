// Debian's Chromium driven by playwright-core, started the way every browser test here needs it:
// headless, as root (no sandbox), with no background traffic to the closed network, and with a
// fake camera and microphone that grant themselves.

import { chromium } from "playwright-core";

/** Flags every browser test uses. */
export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
];

/** Launches Chromium (`$CHROMIUM`, else /usr/bin/chromium) with `CHROMIUM_FLAGS` and `extra`. */
export function launchChromium(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extra],
  });
}
