// A whole call with the official client: join, presence, signals (intact and in order), media
// state, quality reports and a recommendation, and the end (over Socket.IO and REST).
//
// WAKILI_TEST: {url, consultationId, tokens: {lawyer, client, admin}}

import {
  assert,
  assertParticipant,
  connect,
  expectStatus,
  inputs,
  note,
  qualityReport,
  richPayload,
  scenario,
  short,
  sleep,
} from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("call", async () => {
  note("the lawyer joins first, over websocket");
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  assert.equal(lj.waiting, false, "the lawyer never waits");
  assert.equal(lj.resumed, false);
  assert.equal(lj.recording.active, false);
  assert.ok(["low", "medium", "high"].includes(lj.qualityProfile), `qualityProfile ${lj.qualityProfile}`);
  assert.equal(lj.mediaMode, "auto", "booked without a mode: the server's default");
  assert.equal(lj.participants.length, 1, `only the lawyer yet: ${short(lj.participants)}`);
  assertParticipant(lj.participants[0], { participantId: lj.participantId, role: "lawyer", waiting: false, reconnecting: false }, "lawyer in own ack");

  note("the client joins with the default transports (HTTP long-polling, then the upgrade to websocket)");
  const client = await connect("client", env.url, env.tokens.client, { transports: undefined });
  assert.equal(client.transports[0], "polling", "the default transports start with polling");
  const cj = await client.join(id);
  assert.equal(cj.waiting, false, "the lawyer is here, so the client is admitted at once");
  assert.notEqual(cj.participantId, lj.participantId);
  const lawyerSeen = cj.participants.find((p) => p.participantId === lj.participantId);
  assertParticipant(lawyerSeen, { participantId: lj.participantId, role: "lawyer", waiting: false }, "the lawyer in the client's ack");
  assertParticipant(
    cj.participants.find((p) => p.participantId === cj.participantId),
    { participantId: cj.participantId, role: "client", waiting: false },
    "the client in its own ack",
  );
  const joined = await lawyer.waitFor("participant:joined", (p) => p.participantId === cj.participantId);
  assertParticipant(joined, { participantId: cj.participantId, role: "client", waiting: false, reconnecting: false }, "participant:joined to the lawyer");
  assert.equal(await client.waitFor("$upgrade"), "websocket", "polling is upgraded to websocket");
  assert.deepEqual(client.transports, ["polling", "websocket"]);

  note("an admin joins as an observer (to check that signals reach their addressee only)");
  const admin = await connect("admin", env.url, env.tokens.admin);
  const aj = await admin.join(id);
  assert.equal(aj.participants.length, 3, `lawyer, client and admin: ${short(aj.participants)}`);
  await lawyer.waitFor("participant:joined", (p) => p.participantId === aj.participantId);
  await client.waitFor("participant:joined", (p) => p.participantId === aj.participantId);

  note("offer, answer and a restart keep nested JSON and unicode intact");
  const offer = richPayload("offer");
  await lawyer.ok("signal", { to: cj.participantId, type: "offer", payload: offer });
  const gotOffer = await client.waitFor("signal", (s) => s.type === "offer");
  assert.deepEqual(gotOffer, { from: lj.participantId, type: "offer", payload: offer }, "the offer as sent");
  const answer = richPayload("answer");
  await client.ok("signal", { to: lj.participantId, type: "answer", payload: answer });
  const gotAnswer = await lawyer.waitFor("signal", (s) => s.type === "answer");
  assert.deepEqual(gotAnswer, { from: cj.participantId, type: "answer", payload: answer }, "the answer as sent");
  const restart = { iceRestart: true, reason: "réseau changé" };
  await client.ok("signal", { to: lj.participantId, type: "restart", payload: restart });
  assert.deepEqual(await lawyer.waitFor("signal", (s) => s.type === "restart"), {
    from: cj.participantId,
    type: "restart",
    payload: restart,
  });

  note("50 candidates each way, sent back to back, arrive in order");
  const candidate = (who, i) => ({
    candidate: `candidate:${i} 1 udp ${2122260223 - i} 192.0.2.${i % 250} ${50000 + i} typ host generation 0 ufrag ${who}`,
    sdpMid: "0",
    sdpMLineIndex: 0,
    seq: i,
  });
  const sent = [];
  for (let i = 0; i < 50; i++) {
    sent.push(lawyer.ack("signal", { to: cj.participantId, type: "candidate", payload: candidate("L", i) }));
    sent.push(client.ack("signal", { to: lj.participantId, type: "candidate", payload: candidate("C", i) }));
  }
  for (const a of await Promise.all(sent)) {
    assert.equal(a?.ok, true, `candidate ack ${short(a)}`);
  }
  const atClient = [];
  const atLawyer = [];
  for (let i = 0; i < 50; i++) {
    atClient.push(await client.waitFor("signal", (s) => s.type === "candidate"));
    atLawyer.push(await lawyer.waitFor("signal", (s) => s.type === "candidate"));
  }
  assert.deepEqual(atClient.map((s) => s.payload.seq), [...Array(50).keys()], "candidates lawyer → client in order");
  assert.deepEqual(atLawyer.map((s) => s.payload.seq), [...Array(50).keys()], "candidates client → lawyer in order");
  assert.deepEqual(atClient[17], { from: lj.participantId, type: "candidate", payload: candidate("L", 17) });
  assert.ok(atLawyer.every((s) => s.from === cj.participantId));
  await admin.never("signal", () => true, 200);
  await lawyer.never("signal", (s) => s.from === lj.participantId, 0);
  await client.never("signal", (s) => s.from === cj.participantId, 0);

  note("media:state reaches the others as participant:media, not the sender");
  await client.ok("media:state", { audio: true, video: false, screen: true });
  const expectMedia = { participantId: cj.participantId, audio: true, video: false, screen: true };
  assert.deepEqual(await lawyer.waitFor("participant:media"), expectMedia);
  assert.deepEqual(await admin.waitFor("participant:media"), expectMedia);
  await client.never("participant:media", () => true, 300);

  note("quality:report is acked with a score; a run of bad reports brings a recommendation");
  const good = await client.ok("quality:report", qualityReport(false));
  assert.equal(typeof good.score, "number", `score in ${short(good)}`);
  assert.ok(good.score >= 1 && good.score <= 5, `score ${good.score}`);
  assert.equal(typeof good.level, "string", `level in ${short(good)}`);
  const recommendation = client.waitFor("quality:recommendation", () => true, 25_000);
  let done = false;
  recommendation.then(
    () => (done = true),
    () => (done = true),
  );
  let badScore;
  for (let i = 0; i < 60 && !done; i++) {
    const bad = await client.ok("quality:report", qualityReport(true));
    badScore ??= bad.score;
    assert.ok(bad.score < good.score, `a bad connection scores lower (${bad.score} vs ${good.score})`);
    await sleep(400);
  }
  const rec = await recommendation;
  assert.equal(rec.profile, "low", `recommendation ${short(rec)}`);
  assert.equal(typeof rec.reason, "string", `recommendation reason in ${short(rec)}`);
  await lawyer.never("quality:recommendation", () => true, 0);

  note("the lawyer ends the consultation");
  await client.fails("consultation:end", "forbidden");
  await lawyer.ok("consultation:end");
  for (const p of [lawyer, client, admin]) {
    const ended = await p.waitFor("consultation:ended");
    assert.equal(typeof ended.by, "string", `${p.name}: consultation:ended by, in ${short(ended)}`);
  }
  await expectStatus(env.url, id, env.tokens.lawyer, "ended");

  note("a new join after the end gets consultation_closed");
  const late = await connect("client-late", env.url, env.tokens.client);
  await late.fails("consultation:join", "consultation_closed", { consultationId: id });
});
