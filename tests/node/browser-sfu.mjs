// Three headless Chromium pages (a lawyer, a client and an admin) in one consultation, through
// the reference web client (web/src/call on the SDK; tests/node/inspect.mjs looks inside).
// Booked `auto`: peer to peer for two, then everyone moves to the server's SFU when the admin
// joins; booked `sfu`: all three join straight into the SFU. Each run may force every page
// through the embedded TURN relay (`?relay=1`).
//
// Inputs (WAKILI_TEST_FILE): {url, runs: [{name, consultationId, query, mode}], tokens: {lawyer,
// client, admin, observer?}, artifacts}. The observer, invited to the direct run, joins last.
// Prints one line `RESULT {...}`: per run the freeze on the move to the SFU (from
// `media:topology` to the first frame decoded from each other participant through the SFU), the
// received frame widths before, during and after a forced low layer, and what the pages saw.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { launchChromium } from "./chromium.mjs";
import { inputs, note, scenario } from "./lib.mjs";
import { pageTools } from "./pages.mjs";

const env = inputs();
const WAIT_MS = 20_000;
const WAIT = { timeout: WAIT_MS };

mkdirSync(env.artifacts, { recursive: true });
const { screenshot, joined, until, sfuView, sfuFlowing } = pageTools(env, WAIT_MS);

/** Waits until the page decodes peer-to-peer video from its one other participant. */
async function p2pFlowing(page) {
  return until(`${page.who}: peer-to-peer video`, () =>
    page.evaluate(async () => {
      const w = window.wakili;
      const peer = [...w.peers.values()][0];
      if (w.topology !== "p2p" || !peer) {
        return null;
      }
      let framesDecoded = 0;
      (await peer.pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded = s.framesDecoded;
      });
      return framesDecoded > 0 ? { framesDecoded, participantId: w.participantId } : null;
    }),
  );
}

/**
 * Records in the page, by publisher, when the first frame through the SFU is decoded (polling
 * getStats every 20 ms); read back with `freezes`.
 */
async function watchFirstSfuFrames(page) {
  await page.evaluate(() => {
    window.firstSfuFrameAt = {};
    const tick = async () => {
      const w = window.wakili;
      if (w.topology === "sfu" && w.sfu) {
        const inbound = await w.inboundStats();
        for (const [id, s] of Object.entries(inbound)) {
          if (s.video?.framesDecoded > 0 && !(id in window.firstSfuFrameAt)) {
            window.firstSfuFrameAt[id] = performance.now();
          }
        }
      }
      if (Object.keys(window.firstSfuFrameAt).length < 2) {
        setTimeout(tick, 20);
      }
    };
    tick();
  });
}

/** Milliseconds from the page's `media:topology` to the first SFU frame of each publisher. */
async function freezes(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      Object.entries(window.firstSfuFrameAt).map(([id, at]) => [id, Math.round(at - window.wakili.switchedToSfuAt)]),
    ),
  );
}

/** Asserts that video frames, audio packets and audio bytes from each of `others` advance. */
async function mediaAdvancing(page, others) {
  const before = (await sfuView(page)).inbound;
  return until(`${page.who}: media from ${others.join(", ")} advancing`, async () => {
    const now = (await sfuView(page)).inbound;
    // A counter of the same track as before (a new track counts from 0).
    const was = (id, kind, field) =>
      before[id]?.[kind]?.trackId === now[id]?.[kind]?.trackId ? (before[id]?.[kind]?.[field] ?? 0) : 0;
    const advanced = others.every(
      (id) =>
        now[id]?.video?.framesDecoded > was(id, "video", "framesDecoded") + 5 &&
        now[id]?.audio?.packetsReceived > was(id, "audio", "packetsReceived") + 5 &&
        now[id]?.audio?.bytesReceived > was(id, "audio", "bytesReceived"),
    );
    return advanced ? now : null;
  });
}

/** The frame width the page receives from each of `others`. */
async function widths(page, others) {
  const inbound = (await sfuView(page)).inbound;
  return Object.fromEntries(others.map((id) => [id, inbound[id]?.video?.frameWidth ?? 0]));
}

/** Waits until `accept(widths)` holds for the widths the page receives; those widths. */
async function widthsWhere(page, others, what, accept, ms = WAIT_MS) {
  return until(`${page.who}: ${what}`, async () => {
    const seen = await widths(page, others);
    return accept(seen) ? seen : { ok: false, ...seen };
  }, ms);
}

async function candidates(page) {
  return page.evaluate(() => window.wakili.sfu.candidates());
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/**
 * One run. `mode` "auto": the lawyer and the client start peer to peer and everyone moves to the
 * SFU when the admin joins; "sfu": all three join straight into the SFU. Then layers, a reload,
 * the active speaker.
 */
async function run(browser, { name, consultationId, query, mode }) {
  const out = { name, mode };
  let lawyer;
  let client;
  let admin;
  const ids = {};
  if (mode === "auto") {
    note(`${name}: the lawyer and the client hold a peer-to-peer call`);
    lawyer = await joined(browser, "lawyer", consultationId, env.tokens.lawyer, query);
    client = await joined(browser, "client", consultationId, env.tokens.client, query);
    const [l, c] = await Promise.all([p2pFlowing(lawyer), p2pFlowing(client)]);
    ids.lawyer = l.participantId;
    ids.client = c.participantId;
    await screenshot(client, `${name}-p2p-client`);
    note(`${name}: the admin joins and everyone moves to the SFU`);
    await Promise.all([watchFirstSfuFrames(lawyer), watchFirstSfuFrames(client)]);
    admin = await joined(browser, "admin", consultationId, env.tokens.admin, query);
  } else {
    note(`${name}: the lawyer, the client and the admin join through the SFU`);
    lawyer = await joined(browser, "lawyer", consultationId, env.tokens.lawyer, query);
    client = await joined(browser, "client", consultationId, env.tokens.client, query);
    admin = await joined(browser, "admin", consultationId, env.tokens.admin, query);
    ids.lawyer = await lawyer.evaluate(() => window.wakili.participantId);
    ids.client = await client.evaluate(() => window.wakili.participantId);
  }
  ids.admin = await admin.evaluate(() => window.wakili.participantId);
  const pages = { lawyer, client, admin };
  const others = (who) => Object.keys(ids).filter((k) => k !== who).map((k) => ids[k]);
  for (const [who, page] of Object.entries(pages)) {
    await sfuFlowing(page, others(who));
  }
  out.freezeMs = [];
  if (mode === "auto") {
    for (const page of [lawyer, client]) {
      await until(`${page.who}: first SFU frames recorded`, () =>
        page.evaluate(() => Object.keys(window.firstSfuFrameAt).length >= 2),
      );
      assert.equal(page.switchLog.length, 1, `${page.who} logs "switched to sfu" once: ${page.switchLog}`);
      assert.equal(await page.evaluate(() => window.wakili.peers.size), 0, `${page.who}: p2p connections closed`);
      out.freezeMs.push(...Object.values(await freezes(page)));
    }
    out.switchLog = lawyer.switchLog[0];
  }
  for (const [who, page] of Object.entries(pages)) {
    await screenshot(page, `${name}-sfu-${who}`);
  }

  note(`${name}: everyone decodes the others' video and receives their audio`);
  out.received = {};
  for (const [who, page] of Object.entries(pages)) {
    const inbound = await mediaAdvancing(page, others(who));
    out.received[who] = Object.fromEntries(
      Object.entries(inbound).map(([id, s]) => [id, { framesDecoded: s.video.framesDecoded, audioPackets: s.audio.packetsReceived }]),
    );
    const tiles = await page.locator("#remotes .tile[data-participant] video").count();
    assert.equal(tiles, 2, `${who} shows a tile per other participant`);
    out.candidates ??= {};
    out.candidates[who] = await candidates(page);
  }

  out.sentLayers = await lawyer.evaluate(async () => {
    const layers = [];
    (await window.wakili.sfu.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        layers.push({ rid: s.rid, width: s.frameWidth ?? 0, framesSent: s.framesSent ?? 0, limitedBy: s.qualityLimitationReason });
      }
    });
    return layers.sort((a, b) => a.width - b.width);
  });

  note(`${name}: the lawyer asks for the lowest layer of every video, then lets the server choose`);
  const fromOthers = others("lawyer");
  // The server starts low and steps up as its estimate grows: take the widths once settled.
  const before = await widthsWhere(lawyer, fromOthers, "video at more than the lowest layer", (w) =>
    Object.values(w).every((x) => x >= 640),
  );
  await lawyer.evaluate(() => window.wakili.setLayerPreference("q"));
  const low = await widthsWhere(lawyer, fromOthers, "frame width drops after q", (w) =>
    fromOthers.every((id) => w[id] > 0 && w[id] <= before[id] / 2),
  );
  await screenshot(lawyer, `${name}-layer-q-lawyer`);
  await lawyer.evaluate(() => window.wakili.setLayerPreference(null));
  const after = await widthsWhere(lawyer, fromOthers, "frame width recovers after null", (w) =>
    fromOthers.every((id) => w[id] > low[id]),
  );
  out.layers = { before, q: low, after };

  note(`${name}: the client reloads and comes back as the same participant`);
  const clientTrackBefore = (await sfuView(lawyer)).inbound[ids.client].video.trackId;
  await client.reload();
  await until("client: rejoined through the SFU", async () => {
    const view = await sfuView(client);
    return view.topology === "sfu" && view.resumed ? view : null;
  });
  assert.equal(await client.evaluate(() => window.wakili.participantId), ids.client, "same participant after reload");
  await sfuFlowing(client, others("client"));
  await until("lawyer: the reloaded client's new video", async () => {
    const s = (await sfuView(lawyer)).inbound[ids.client]?.video;
    return s && s.trackId !== clientTrackBefore && s.framesDecoded > 0 ? s : null;
  });
  await mediaAdvancing(admin, others("admin"));
  await screenshot(client, `${name}-client-after-reload`);

  note(`${name}: the admin speaks: the others highlight the admin's tile`);
  // The fake microphone beeps 20 ms every half second: far below speech level on average. A
  // steady tone from WebAudio replaces the admin's microphone track (no renegotiation).
  await admin.evaluate(async () => {
    const context = new AudioContext();
    const tone = context.createOscillator();
    const gain = context.createGain();
    const destination = context.createMediaStreamDestination();
    tone.frequency.value = 220;
    gain.gain.value = 0.5;
    tone.connect(gain).connect(destination);
    tone.start();
    await context.resume();
    await window.wakili.sfu.replaceTrack("audio", destination.stream.getAudioTracks()[0]);
  });
  for (const page of [lawyer, client]) {
    await page.locator(`#remotes .tile.speaking[data-participant="${ids.admin}"]`).waitFor(WAIT);
  }
  out.speaking = { speaker: "admin", highlightedOn: ["lawyer", "client"] };
  await screenshot(lawyer, `${name}-admin-speaking-lawyer`);

  if (name === "direct") {
    note(`${name}: the lawyer shares the screen: a tile of its own for the others`);
    await lawyer.locator("#share").click();
    await until("admin: the lawyer's screen tile plays", () =>
      admin.evaluate(
        (id) => document.querySelector(`#remotes [data-screen-of="${id}"] video`)?.videoWidth > 0,
        ids.lawyer,
      ),
    );
    await sfuFlowing(admin, others("admin"));
    await screenshot(admin, `${name}-screen-share-admin`);
    await lawyer.locator("#share").click();
    await until("admin: the screen tile goes", () =>
      admin.evaluate((id) => !document.querySelector(`#remotes [data-screen-of="${id}"]`), ids.lawyer),
    );
  }

  if (name === "direct" && env.tokens.observer) {
    note(`${name}: an invited observer joins: sees and hears everyone, sends nothing`);
    const observer = await joined(browser, "observer", consultationId, env.tokens.observer, query);
    assert.equal(await observer.locator("#mute").isHidden(), true, "an observer has no microphone button");
    const everyone = Object.values(ids);
    const seen = await mediaAdvancing(observer, everyone);
    const observerId = await observer.evaluate(() => window.wakili.participantId);
    await mediaAdvancing(lawyer, others("lawyer"));
    assert.equal((await sfuView(lawyer)).inbound[observerId], undefined, "nothing comes from the observer");
    out.observer = { participantId: observerId, receivedFrom: everyone.filter((id) => seen[id]).length };
    await screenshot(observer, `${name}-observer`);
    await observer.context().close();
  }

  out.quality = await until("client: a quality report scored through the SFU", () =>
    client.evaluate(() => window.wakili.lastQuality),
  );
  for (const page of Object.values(pages)) {
    await page.context().close();
  }
  return out;
}

scenario(
  "three browsers move from peer to peer to the SFU, direct and relayed",
  async () => {
    const browser = await launchChromium([
      "--auto-select-desktop-capture-source=Entire screen",
      "--autoplay-policy=no-user-gesture-required",
    ]);
    const result = { runs: {} };
    try {
      for (const spec of env.runs) {
        const started = Date.now();
        result.runs[spec.name] = await run(browser, spec);
        result.runs[spec.name].seconds = (Date.now() - started) / 1000;
      }
    } finally {
      await browser.close();
    }
    const all = Object.values(result.runs).flatMap((r) => r.freezeMs);
    result.freezeMs = { p50: percentile(all, 50), max: Math.max(...all), all };
    console.log(`RESULT ${JSON.stringify(result)}`);
  },
  { limitMs: 170_000 },
);
