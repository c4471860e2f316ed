// What the browser scenarios share: joining the reference web client's call page, waiting for a
// condition, screenshots, and what a page receives through the SFU.

import assert from "node:assert/strict";
import { join } from "node:path";
import { installInspector } from "./inspect.mjs";

/**
 * The helpers for scenario inputs `env` ({url, artifacts}), waiting at most `waitMs` by default.
 * Screenshots are numbered in the order they are taken.
 */
export function pageTools(env, waitMs) {
  const WAIT = { timeout: waitMs };
  let shot = 0;

  async function screenshot(page, name) {
    shot += 1;
    const file = join(env.artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
  }

  /** The call page of `consultationId` for `token`, joined; console errors are printed. */
  async function joined(browser, who, consultationId, token, query = "") {
    const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
    await installInspector(context);
    const page = await context.newPage();
    page.who = who;
    page.switchLog = [];
    page.on("console", (m) => {
      if (m.type() === "error") {
        console.error(`[${who} console] ${m.text()}`);
      } else if (m.text().startsWith("switched to sfu")) {
        page.switchLog.push(m.text());
      }
    });
    page.on("pageerror", (e) => console.error(`[${who} page error] ${e.message}`));
    await page.goto(`${env.url}/c/${consultationId}${query}#token=${encodeURIComponent(token)}`);
    await page.locator("#preview").waitFor({ state: "visible", ...WAIT });
    await page.locator("#join").click();
    await page.locator("#call").waitFor({ state: "visible", ...WAIT });
    return page;
  }

  /** Polls `probe()` (in Node) every 100 ms until it returns something truthy; that value. */
  async function until(what, probe, ms = waitMs) {
    const deadline = Date.now() + ms;
    let last;
    for (;;) {
      last = await probe();
      if (last && last.ok !== false) {
        return last;
      }
      assert.ok(Date.now() < deadline, `${what} (last seen: ${JSON.stringify(last)})`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** What the page receives through the SFU, by publisher, and its topology. */
  function sfuView(page) {
    return page.evaluate(async () => ({
      topology: window.wakili.topology,
      participantId: window.wakili.participantId,
      resumed: window.wakili.resumed,
      inbound: await window.wakili.inboundStats(),
    }));
  }

  /** Waits until the page decodes video through the SFU from each of `others`; its view. */
  async function sfuFlowing(page, others, ms) {
    return until(
      `${page.who}: video through the SFU from ${others.join(", ")}`,
      async () => {
        const view = await sfuView(page);
        const all =
          view.topology === "sfu" && others.every((id) => view.inbound[id]?.video?.framesDecoded > 0);
        return all ? view : { ok: false, ...view };
      },
      ms,
    );
  }

  return { screenshot, joined, until, sfuView, sfuFlowing };
}
