// The TypeScript SDK in headless Chromium with real WebRTC: two participants (lawyer, client) on
// pages of the server's origin run `Consultation` from a browser bundle of sdk/src (esbuild, made
// here), once in a peer-to-peer consultation and once in one booked through the SFU. Each must
// receive the other's camera with frames decoded, send scored quality reports from getStats, and
// (p2p) keep the media flowing through an ICE restart.
//
// Inputs (WAKILI_TEST_FILE): {url, p2p: {consultationId}, sfu: {consultationId},
// tokens: {lawyer, client}}. Prints `RESULT {...}` with what each call measured.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { launchChromium } from "./chromium.mjs";
import { inputs, note, scenario } from "./lib.mjs";

const env = inputs();
const WAIT = { timeout: 30_000 };
const PAGE = "/__sdk-browser-test";

async function bundle() {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("../../sdk/src/index.ts", import.meta.url))],
    bundle: true,
    format: "iife",
    globalName: "WakiliSDK",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

/** A page of the server's origin (so REST and Socket.IO are same-origin) with the SDK loaded. */
async function open(browser, who, sdk) {
  const context = await browser.newContext();
  await context.route(`${env.url}${PAGE}`, (route) =>
    route.fulfill({ contentType: "text/html", body: `<!doctype html><title>${who}</title><script>${sdk}</script>` }),
  );
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error(`[${who} console] ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[${who} page error] ${e.message}`));
  await page.goto(`${env.url}${PAGE}`);
  return page;
}

/** Joins `consultationId` on `page` with the fake camera; resolves with the join ack. */
function join(page, consultationId, token) {
  return page.evaluate(
    async ({ consultationId, token }) => {
      const localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
      const call = new WakiliSDK.Consultation({
        url: location.origin,
        consultationId,
        token,
        localStream,
        qualityReportIntervalMs: 1000,
      });
      window.call = call;
      window.samples = [];
      window.errors = [];
      call.on("quality", (q) => window.samples.push(q));
      call.on("error", (e) => window.errors.push(String(e?.message ?? e)));
      call.on("remoteStreams", ({ participantId, camera }) => {
        if (!camera) return;
        let video = document.querySelector(`video[data-participant="${participantId}"]`);
        if (!video) {
          video = document.createElement("video");
          video.dataset.participant = participantId;
          video.muted = true;
          video.autoplay = true;
          video.playsInline = true;
          document.body.append(video);
        }
        if (video.srcObject !== camera) video.srcObject = camera;
      });
      const ack = await call.join();
      return { participantId: ack.participantId, waiting: ack.waiting, topology: ack.topology };
    },
    { consultationId, token },
  );
}

/** Waits until `page` shows `from`'s video; returns its frame size. */
async function seesVideoOf(page, from) {
  await page.waitForFunction(
    (id) => {
      const video = document.querySelector(`video[data-participant="${id}"]`);
      return Boolean(video && video.videoWidth > 0);
    },
    from,
    WAIT,
  );
  return page.evaluate((id) => {
    const video = document.querySelector(`video[data-participant="${id}"]`);
    return { width: video.videoWidth, height: video.videoHeight };
  }, from);
}

/** Video frames decoded over all of the page's connections. */
function framesDecoded(page) {
  return page.evaluate(async () => {
    let frames = 0;
    for (const pc of window.call.connections()) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded ?? 0;
      });
    }
    return frames;
  });
}

async function framesKeepComing(page, what) {
  const before = await framesDecoded(page);
  await page.waitForFunction(
    async (n) => {
      let frames = 0;
      for (const pc of window.call.connections()) {
        (await pc.getStats()).forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded ?? 0;
        });
      }
      return frames > n + 10;
    },
    before,
    WAIT,
  );
  note(`${what}: frames keep coming`);
}

/** Waits for a scored quality report; returns it. */
async function qualitySample(page) {
  await page.waitForFunction(() => window.samples.length > 0, null, WAIT);
  return page.evaluate(() => window.samples.at(-1));
}

async function call(browser, sdk, mode) {
  const consultationId = env[mode].consultationId;
  note(`${mode}: the lawyer and the client join`);
  const lawyer = await open(browser, `${mode}-lawyer`, sdk);
  const client = await open(browser, `${mode}-client`, sdk);
  const lj = await join(lawyer, consultationId, env.tokens.lawyer);
  const cj = await join(client, consultationId, env.tokens.client);
  assert.equal(cj.waiting, false, "the lawyer is there: no waiting room");

  note(`${mode}: each sees the other's camera`);
  const lawyerSees = await seesVideoOf(lawyer, cj.participantId);
  const clientSees = await seesVideoOf(client, lj.participantId);
  const topology = await lawyer.evaluate(() => window.call.snapshot.topology);
  assert.equal(topology, mode, `the call's topology`);

  note(`${mode}: quality reports are scored`);
  const sample = await qualitySample(lawyer);
  assert.equal(typeof sample.score, "number");
  assert.ok(["low", "medium", "high"].includes(sample.level), JSON.stringify(sample));

  let iceRestart = null;
  if (mode === "p2p") {
    note("p2p: an ICE restart keeps the call");
    const ufrag = () =>
      lawyer.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.call.connections()[0].localDescription.sdp)[1]);
    const before = await ufrag();
    await lawyer.evaluate(() => window.call.restartIce());
    await lawyer.waitForFunction(
      (old) => {
        const sdp = window.call.connections()[0]?.localDescription?.sdp ?? "";
        const pc = window.call.connections()[0];
        return !sdp.includes(`a=ice-ufrag:${old}`) && pc.connectionState === "connected";
      },
      before,
      WAIT,
    );
    iceRestart = { before, after: await ufrag() };
    await framesKeepComing(client, "p2p after the ICE restart");
  }

  const errors = [...(await lawyer.evaluate(() => window.errors)), ...(await client.evaluate(() => window.errors))];
  assert.deepEqual(errors, [], "no errors reported by the SDK");
  note(`${mode}: the lawyer ends the consultation`);
  await lawyer.evaluate(() => window.call.end());
  await client.waitForFunction(() => window.call.snapshot.status === "ended", null, WAIT);
  await lawyer.context().close();
  await client.context().close();
  return { lawyerSees, clientSees, sample, iceRestart };
}

scenario(
  "the SDK in Chromium, peer to peer and through the SFU",
  async () => {
    note("bundling sdk/src for the browser");
    const sdk = await bundle();
    const browser = await launchChromium();
    try {
      const p2p = await call(browser, sdk, "p2p");
      const sfu = await call(browser, sdk, "sfu");
      console.log(`RESULT ${JSON.stringify({ p2p, sfu })}`);
    } finally {
      await browser.close();
    }
  },
  { limitMs: 150_000 },
);
