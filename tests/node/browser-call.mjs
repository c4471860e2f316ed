// End-to-end calls in headless Chromium through the reference web client (web/), driven by
// playwright-core against Debian's /usr/bin/chromium with fake camera and microphone.
//
// Inputs (WAKILI_TEST_FILE): {url, direct: {consultationId}, relay: {consultationId},
// tokens: {lawyer, client}, artifacts, lowProfile: {maxBitrate}}.
// Prints one line `RESULT {...}` with the measurements the Rust test checks further.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { launchChromium } from "./chromium.mjs";
import { installInspector } from "./inspect.mjs";
import { inputs, note, scenario } from "./lib.mjs";

const env = inputs();
const WAIT = { timeout: 20_000 };

mkdirSync(env.artifacts, { recursive: true });
let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = join(env.artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/** The call page of `consultationId` for `token`, with the browser's console kept for failures. */
async function open(browser, who, consultationId, token, query = "", viewport = { width: 900, height: 760 }, options = {}) {
  const context = await browser.newContext({ viewport });
  await installInspector(context);
  if (options.blockWebSockets) {
    // A corporate proxy that refuses WebSockets: every upgrade is closed at once.
    await context.routeWebSocket(/./, (ws) => ws.close({ code: 1008, reason: "blocked" }));
  }
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && console.error(`[${who} console] ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[${who} page error] ${e.message}`));
  await page.goto(`${env.url}/c/${consultationId}${query}#token=${encodeURIComponent(token)}`);
  await page.locator("#preview").waitFor({ state: "visible", ...WAIT });
  return page;
}

/** Waits until the page decodes the other party's video; returns what getStats says. */
async function remoteVideoFlowing(page) {
  await page.waitForFunction(() => {
    const video = document.querySelector("#remotes video");
    return video && video.videoWidth > 0 && window.wakili.firstRemoteFrameMs !== null;
  }, null, WAIT);
  return page.evaluate(async () => {
    const peer = [...window.wakili.peers.values()][0];
    const stats = await peer.pc.getStats();
    let framesDecoded = 0;
    let pair = null;
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded = s.framesDecoded;
      if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
    });
    const video = document.querySelector("#remotes video");
    return {
      framesDecoded,
      width: video.videoWidth,
      height: video.videoHeight,
      local: pair ? byId.get(pair.localCandidateId)?.candidateType : null,
      remote: pair ? byId.get(pair.remoteCandidateId)?.candidateType : null,
      firstRemoteFrameMs: window.wakili.firstRemoteFrameMs,
      participantId: window.wakili.participantId,
    };
  });
}

/** Video frames the page decoded from its (first) peer connection; 0 while it has none. */
async function framesDecoded(page) {
  return page.evaluate(async () => {
    const peer = [...window.wakili.peers.values()][0];
    let frames = 0;
    (await peer?.pc.getStats())?.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded;
    });
    return frames;
  });
}

/** Waits until the page has decoded more than `n` frames. */
async function framesBeyond(page, n) {
  const deadline = Date.now() + WAIT.timeout;
  while ((await framesDecoded(page)) <= n) {
    assert.ok(Date.now() < deadline, `no more than ${n} video frames decoded`);
    await page.waitForTimeout(100);
  }
}

async function api(method, path, token, body) {
  const response = await fetch(`${env.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

scenario("browser calls, direct and relayed", async () => {
  const browser = await launchChromium([
    "--auto-select-desktop-capture-source=Entire screen",
    "--autoplay-policy=no-user-gesture-required",
  ]);
  const result = { joinToFirstFrameMs: [] };
  try {
    const id = env.direct.consultationId;

    note("the client arrives first and waits");
    const client = await open(browser, "client", id, env.tokens.client);
    await screenshot(client, "client-preview");
    await client.locator("#join").click();
    await client.locator("#waiting").waitFor({ state: "visible", ...WAIT });
    await screenshot(client, "client-waiting-room");

    note("the lawyer joins: the client is admitted and both see each other");
    const lawyer = await open(browser, "lawyer", id, env.tokens.lawyer);
    await lawyer.locator("#join").click();
    await client.locator("#call").waitFor({ state: "visible", ...WAIT });
    const lawyerSees = await remoteVideoFlowing(lawyer);
    const clientSees = await remoteVideoFlowing(client);
    for (const seen of [lawyerSees, clientSees]) {
      assert.ok(seen.framesDecoded > 0, `frames decoded: ${JSON.stringify(seen)}`);
      assert.ok(seen.width > 0 && seen.height > 0);
    }
    assert.notEqual(lawyerSees.local, "relay", "direct call uses host/srflx candidates");
    result.direct = { lawyer: lawyerSees, client: clientSees };
    result.joinToFirstFrameMs.push(lawyerSees.firstRemoteFrameMs, clientSees.firstRemoteFrameMs);
    await screenshot(lawyer, "direct-call-lawyer");
    await screenshot(client, "direct-call-client");

    note("mute and camera off reach the other side");
    await lawyer.locator("#mute").click();
    await client.locator('#remotes [data-audio="false"]').waitFor(WAIT);
    await lawyer.locator("#mute").click();
    await client.locator('#remotes [data-audio="true"]').waitFor(WAIT);
    await client.locator("#camera").click();
    await lawyer.locator('#remotes [data-video="false"]').waitFor(WAIT);
    await screenshot(lawyer, "client-camera-off");
    await client.locator("#camera").click();
    await lawyer.locator('#remotes [data-video="true"]').waitFor(WAIT);

    note("the lawyer lowers the quality profile: both senders apply its bitrate");
    await api("PUT", `/api/v1/consultations/${id}/quality-profile`, env.tokens.lawyer, { profile: "low" });
    for (const page of [lawyer, client]) {
      await page.waitForFunction(
        (max) => {
          const peer = [...window.wakili.peers.values()][0];
          const sender = peer?.pc.getSenders().find((s) => s.track?.kind === "video");
          return window.wakili.profile === "low" && sender?.getParameters().encodings?.[0]?.maxBitrate === max;
        },
        env.lowProfile.maxBitrate,
        WAIT,
      );
    }

    note("screen share replaces the outgoing video track");
    await client.locator("#share").click();
    await client.waitForFunction(() => {
      const w = window.wakili;
      const sender = [...w.peers.values()][0].pc.getSenders().find((s) => s.track?.kind === "video");
      return w.screen && sender.track === w.screen.getVideoTracks()[0];
    }, null, WAIT);
    await lawyer.locator('#remotes [data-screen="true"]').waitFor(WAIT);
    await framesBeyond(lawyer, (await framesDecoded(lawyer)) + 5);
    await screenshot(lawyer, "client-sharing-screen");
    await client.locator("#share").click();
    await lawyer.locator('#remotes [data-screen="false"]').waitFor(WAIT);

    note("recording with consent: 10 seconds uploaded and completed");
    await lawyer.locator("#record").click();
    await client.locator("#consent").waitFor({ state: "visible", ...WAIT });
    await screenshot(client, "consent-dialog");
    await client.locator("#consent-allow").click();
    await lawyer.locator("#recording-indicator").waitFor({ state: "visible", ...WAIT });
    await client.locator("#recording-indicator").waitFor({ state: "visible", ...WAIT });
    const recordingStarted = Date.now();
    await screenshot(client, "recording-indicator-client");
    await lawyer.waitForTimeout(10_000);
    await lawyer.locator("#record").click();
    await client.locator("#recording-indicator").waitFor({ state: "hidden", ...WAIT });
    await lawyer.waitForFunction(() => window.wakili.completedRecording !== null, null, WAIT);
    const completed = await lawyer.evaluate(() => window.wakili.completedRecording);
    result.recording = { id: completed.recordingId ?? completed.id, seconds: (Date.now() - recordingStarted) / 1000 };
    await screenshot(lawyer, "recording-saved");

    note("a reload mid-call resumes the same participant and the video comes back");
    const clientId = clientSees.participantId;
    await lawyer.evaluate(() => {
      [...window.wakili.peers.values()][0].pc.beforeReload = true;
    });
    await client.reload();
    await client.waitForFunction(() => window.wakili.joined && window.wakili.resumed, null, WAIT);
    const afterReload = await remoteVideoFlowing(client);
    assert.equal(afterReload.participantId, clientId, "same participant after reload");
    // The lawyer's connection to the reloaded page is a new one, counting from 0.
    await lawyer.waitForFunction(() => {
      const peer = [...window.wakili.peers.values()][0];
      return peer && !peer.pc.beforeReload;
    }, null, WAIT);
    await framesBeyond(lawyer, 5);
    result.joinToFirstFrameMs.push(afterReload.firstRemoteFrameMs);
    await screenshot(client, "client-after-reload");

    note("the signaling connection drops: a banner shows, and the same participant comes back");
    await client.evaluate(() => window.wakili.dropConnection());
    await client.locator("#banner").waitFor({ state: "visible", ...WAIT });
    await screenshot(client, "reconnecting-banner");
    await client.locator("#banner").waitFor({ state: "hidden", ...WAIT });
    assert.equal(await client.evaluate(() => window.wakili.participantId), clientId);

    note("an ICE restart asked for by one side renegotiates, and video keeps flowing");
    const ufrag = (page) =>
      page.evaluate(() => /a=ice-ufrag:(\S+)/.exec([...window.wakili.peers.values()][0].pc.remoteDescription.sdp)[1]);
    const [asker, offerer] =
      clientId < (await lawyer.evaluate(() => window.wakili.participantId)) ? [lawyer, client] : [client, lawyer];
    const before2 = await ufrag(asker);
    await asker.evaluate(() => {
      const to = [...window.wakili.peers.keys()][0];
      window.wakili.sendSignal({ to, type: "restart", payload: { fresh: false } });
    });
    await asker.waitForFunction(
      (old) => /a=ice-ufrag:(\S+)/.exec([...window.wakili.peers.values()][0].pc.remoteDescription.sdp)[1] !== old,
      before2,
      WAIT,
    );
    assert.equal(await offerer.evaluate(() => window.wakili.iceRestarts), 1);
    await framesBeyond(asker, (await framesDecoded(asker)) + 5);
    assert.equal(await asker.evaluate(() => [...window.wakili.peers.values()][0].pc.connectionState), "connected");

    note("quality reports are scored");
    await client.waitForFunction(() => window.wakili.lastQuality !== null, null, WAIT);
    result.quality = await client.evaluate(() => window.wakili.lastQuality);

    note("the lawyer ends the consultation: everyone sees the end");
    await lawyer.locator("#end").click();
    await client.locator("#ended").waitFor({ state: "visible", ...WAIT });
    await lawyer.locator("#ended").waitFor({ state: "visible", ...WAIT });
    await screenshot(client, "ended");
    await lawyer.context().close();
    await client.context().close();

    note("a second consultation, forced through the embedded TURN relay");
    const rid = env.relay.consultationId;
    const lawyer2 = await open(browser, "lawyer", rid, env.tokens.lawyer, "?relay=1");
    note("the lawyer joins with the keyboard alone: the join button has the focus");
    assert.equal(await lawyer2.evaluate(() => document.activeElement?.id), "join");
    await lawyer2.keyboard.press("Enter");
    await lawyer2.locator("#call").waitFor({ state: "visible", ...WAIT });
    note("the client joins on a phone-sized screen, behind a proxy that refuses WebSockets");
    const phone = { width: 390, height: 844 };
    const client2 = await open(browser, "client", rid, env.tokens.client, "?relay=1", phone, { blockWebSockets: true });
    await client2.locator("#join").click();
    const relayedLawyer = await remoteVideoFlowing(lawyer2);
    const relayedClient = await remoteVideoFlowing(client2);
    for (const seen of [relayedLawyer, relayedClient]) {
      assert.equal(seen.local, "relay", `relayed: ${JSON.stringify(seen)}`);
      assert.ok(seen.framesDecoded > 0);
    }
    result.relay = { lawyer: relayedLawyer, client: relayedClient };
    assert.equal(await client2.evaluate(() => window.wakili.transport), "polling", "signaling over long-polling");
    assert.equal(await lawyer2.evaluate(() => window.wakili.transport), "websocket");
    const layout = await client2.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      controls: [...document.querySelectorAll("#call .controls button")]
        .filter((b) => !b.hidden)
        .map((b) => b.getBoundingClientRect())
        .every((r) => r.left >= 0 && r.right <= window.innerWidth),
    }));
    assert.ok(layout.overflow <= 0 && layout.controls, `phone layout: ${JSON.stringify(layout)}`);
    result.joinToFirstFrameMs.push(relayedClient.firstRemoteFrameMs);
    await screenshot(client2, "relay-call-client");
    await screenshot(lawyer2, "relay-call-lawyer");
  } finally {
    await browser.close();
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
}, { limitMs: 150_000 });
