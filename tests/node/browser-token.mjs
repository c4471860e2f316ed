// The reference web client keeps the call when its token expires: a "platform" page opens the
// call page (window.open) with a token of a few seconds; when the server warns (`auth:expiring`)
// the call page asks its opener for a new token (postMessage `wakili:token-request`), the
// platform answers (`wakili:token`), and the call page sends `auth:refresh`. The lawyer stays in
// the call past the first token's expiry.
//
// Inputs (WAKILI_TEST_FILE): {url, consultationId, tokens: {shortLawyer, longLawyer},
// shortExpiresAtMs}.

import assert from "node:assert/strict";
import { launchChromium } from "./chromium.mjs";
import { installInspector } from "./inspect.mjs";
import { inputs, note, scenario } from "./lib.mjs";

const env = inputs();
const WAIT = { timeout: 20_000 };

scenario("the web client renews its token from the page that opened it", async () => {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    await installInspector(context);
    const platform = await context.newPage();
    platform.on("pageerror", (e) => console.error(`[platform page error] ${e.message}`));
    // The platform: any page of the same server will do; it answers token requests.
    await platform.goto(`${env.url}/healthz`);
    await platform.evaluate((token) => {
      window.requests = 0;
      window.addEventListener("message", (event) => {
        if (event.data?.type === "wakili:token-request") {
          window.requests += 1;
          event.source.postMessage({ type: "wakili:token", token }, "*");
        }
      });
    }, env.tokens.longLawyer);

    note("the platform opens the call page with a short-lived token");
    const url = `${env.url}/c/${env.consultationId}#token=${encodeURIComponent(env.tokens.shortLawyer)}`;
    const [call] = await Promise.all([
      context.waitForEvent("page"),
      platform.evaluate((u) => window.open(u, "_blank"), url),
    ]);
    call.on("console", (m) => m.type() === "error" && console.error(`[call console] ${m.text()}`));
    call.on("pageerror", (e) => console.error(`[call page error] ${e.message}`));
    await call.locator("#preview").waitFor({ state: "visible", ...WAIT });
    await call.locator("#join").click();
    await call.waitForFunction(() => window.wakili.joined, null, WAIT);

    note("auth:expiring → the opener's token → auth:refresh");
    await call.waitForFunction(() => window.wakili.tokenRefreshes >= 1, null, WAIT);
    assert.equal(await platform.evaluate(() => window.requests), 1, "one token request");

    note("past the first token's expiry the lawyer is still in the call");
    await call.waitForTimeout(Math.max(0, env.shortExpiresAtMs + 2000 - Date.now()));
    const seen = await call.evaluate(async () => ({
      joined: window.wakili.joined,
      ended: window.wakili.ended,
      connected: window.wakili.connected,
      api: await window.wakili.apiAnswers(),
      tokenOnWindow: Object.keys(window).filter((k) => /token/i.test(k)),
    }));
    assert.deepEqual(
      { joined: seen.joined, ended: seen.ended, connected: seen.connected },
      { joined: true, ended: false, connected: true },
      "still in the call",
    );
    assert.equal(seen.api, 200, "the page's API calls use the new token from now on");
    assert.deepEqual(seen.tokenOnWindow, [], "no token on window");
  } finally {
    await browser.close();
  }
});
