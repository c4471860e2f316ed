/**
 * The page exposes nothing on `window`. Developer tools, and the browser tests, may watch a call
 * by defining `window.__WAKILI_DEVTOOLS__` before the page's script runs (a browser extension, or
 * Playwright's `addInitScript`): the page hands each `Consultation` it makes to its `attach`.
 * Without such a hook nothing happens. The token stays out of reach of it: the SDK keeps it in
 * private fields.
 */

import type { Consultation } from "@wakili/sdk";

interface DevtoolsHook {
  attach(call: Consultation): void;
}

export function announce(call: Consultation): void {
  const hook = (window as { __WAKILI_DEVTOOLS__?: DevtoolsHook }).__WAKILI_DEVTOOLS__;
  try {
    hook?.attach(call);
  } catch (error) {
    console.warn("wakili: the devtools hook failed", error);
  }
}
