// Server recording in real browsers: three headless Chromium pages (a lawyer, a client and an
// invited interpreter) in a consultation booked `sfu`, through the reference web client. The
// lawyer records; the client and the interpreter consent. During the recording the client
// reloads its page and shares its screen for a while, and the interpreter leaves and comes back
// (and consents again); then the lawyer stops it. The browsers upload nothing: the server records every participant's tracks.
//
// Inputs (WAKILI_TEST_FILE): {url, consultationId, tokens: {lawyer, client, interpreter},
// artifacts}. Prints one line `RESULT {...}`: the recording id and, in milliseconds since the
// recording became active, when the screen share started and stopped, when the interpreter left
// and came back and when the recording was stopped.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";
import { inputs, note, scenario } from "./lib.mjs";
import { pageTools } from "./pages.mjs";

const env = inputs();
const WAIT_MS = 20_000;
const WAIT = { timeout: WAIT_MS };
mkdirSync(env.artifacts, { recursive: true });
const { screenshot, joined, until, sfuFlowing } = pageTools(env, WAIT_MS);

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The page's participant id. */
const idOf = (page) => page.evaluate(() => window.wakili.participantId);

/** Consents on `page` when its dialog asks. */
async function consent(page) {
  await page.locator("#consent").waitFor({ state: "visible", ...WAIT });
  await page.locator("#consent-allow").click();
}

/** Waits until `page` shows the recording on (or off). */
async function recordingShown(page, on) {
  await page.locator("#recording-indicator").waitFor({ state: on ? "visible" : "hidden", ...WAIT });
}

scenario(
  "the server records three browsers through a reload and an interpreter's return",
  async () => {
    const browser = await launchChromium([
      "--auto-select-desktop-capture-source=Entire screen",
      "--autoplay-policy=no-user-gesture-required",
    ]);
    const result = {};
    try {
      const id = env.consultationId;
      note("the lawyer, the client and the interpreter join through the SFU");
      const lawyer = await joined(browser, "lawyer", id, env.tokens.lawyer);
      const client = await joined(browser, "client", id, env.tokens.client);
      let interpreter = await joined(browser, "interpreter", id, env.tokens.interpreter);
      const ids = { lawyer: await idOf(lawyer), client: await idOf(client), interpreter: await idOf(interpreter) };
      const others = (who) => Object.entries(ids).filter(([w]) => w !== who).map(([, v]) => v);
      for (const [who, page] of Object.entries({ lawyer, client, interpreter })) {
        await sfuFlowing(page, others(who));
      }

      note("the lawyer records; the client and the interpreter consent; no browser uploads");
      await lawyer.locator("#record").click();
      await consent(client);
      await consent(interpreter);
      for (const page of [lawyer, client, interpreter]) {
        await recordingShown(page, true);
      }
      const active = Date.now();
      const state = await lawyer.evaluate(() => ({ ...window.wakili.recording, recorders: window.wakili.recordersMade }));
      assert.equal(state.server, true, `the server records: ${JSON.stringify(state)}`);
      assert.equal(state.recorders, 0, "the lawyer's browser does not record");
      result.recordingId = state.recordingId;
      await screenshot(lawyer, "recording-by-the-server");
      await pause(5_000);

      note("the client reloads its page: the same participant, recorded again");
      await client.reload();
      await until("client: resumed", () => client.evaluate(() => window.wakili.joined && window.wakili.resumed));
      assert.equal(await idOf(client), ids.client);
      await sfuFlowing(client, others("client"));
      await recordingShown(client, true);
      await pause(2_000);

      note("the client shares its screen for a few seconds: a track of its own");
      await client.locator("#share").click();
      await until("lawyer: the client's screen tile plays", () =>
        lawyer.evaluate(
          (id) => document.querySelector(`#remotes [data-screen-of="${id}"] video`)?.videoWidth > 0,
          ids.client,
        ),
      );
      result.shareStartedMs = Date.now() - active;
      await pause(4_000);
      await client.locator("#share").click();
      await until("lawyer: the screen tile goes", () =>
        lawyer.evaluate((id) => !document.querySelector(`#remotes [data-screen-of="${id}"]`), ids.client),
      );
      result.shareStoppedMs = Date.now() - active;
      await sfuFlowing(lawyer, others("lawyer"));

      note("the interpreter leaves, then comes back and consents again");
      await interpreter.locator("#leave").click();
      result.interpreterLeftMs = Date.now() - active;
      await interpreter.context().close();
      await pause(3_000);
      interpreter = await joined(browser, "interpreter-again", id, env.tokens.interpreter);
      ids.interpreter = await idOf(interpreter);
      await consent(interpreter);
      await recordingShown(lawyer, true);
      result.interpreterBackMs = Date.now() - active;
      await sfuFlowing(lawyer, others("lawyer"));
      await pause(5_000);

      note("the lawyer stops the recording");
      await lawyer.locator("#record").click();
      for (const page of [lawyer, client, interpreter]) {
        await recordingShown(page, false);
      }
      result.stoppedMs = Date.now() - active;
      await screenshot(lawyer, "recording-stopped");
      for (const page of [lawyer, client, interpreter]) {
        await page.context().close();
      }
    } finally {
      await browser.close();
    }
    console.log(`RESULT ${JSON.stringify(result)}`);
  },
  { limitMs: 150_000 },
);
