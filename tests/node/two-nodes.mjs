// Two servers sharing PostgreSQL and Redis: the lawyer on node 1, the client on node 2. Join,
// waiting room, signals both ways, media, consent-gated recording, the client resuming onto the
// *other* node within the grace period, and the end.
//
// WAKILI_TEST: {url, url2, consultationId, tokens: {lawyer, client}}

import { assert, connect, dropTransport, expectStatus, inputs, note, richPayload, scenario, short, sleep } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;
assert.equal(typeof env.url2, "string", "WAKILI_TEST.url2 (the second node)");
assert.notEqual(env.url, env.url2, "two different nodes");

scenario("two nodes", async () => {
  note("the client arrives first, on node 2, and waits");
  const client = await connect("client@node2", env.url2, env.tokens.client);
  const cj = await client.join(id);
  assert.equal(cj.waiting, true, `the client waits: ${short(cj)}`);

  note("the lawyer joins on node 1: the client on node 2 is admitted");
  const lawyer = await connect("lawyer@node1", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  assert.ok(
    lj.participants.some((p) => p.participantId === cj.participantId && p.role === "client"),
    `node 1 knows the client who joined on node 2: ${short(lj.participants)}`,
  );
  assert.deepEqual(await client.waitFor("consultation:admitted"), { participantId: cj.participantId });
  await client.waitFor("participant:joined", (p) => p.participantId === lj.participantId);
  await expectStatus(env.url2, id, env.tokens.lawyer, "in_progress");

  note("signals both ways across the nodes, intact and in order");
  const offer = richPayload("offer");
  await lawyer.ok("signal", { to: cj.participantId, type: "offer", payload: offer });
  assert.deepEqual(await client.waitFor("signal"), { from: lj.participantId, type: "offer", payload: offer });
  const answer = richPayload("answer");
  await client.ok("signal", { to: lj.participantId, type: "answer", payload: answer });
  assert.deepEqual(await lawyer.waitFor("signal"), { from: cj.participantId, type: "answer", payload: answer });
  const pending = [];
  for (let i = 0; i < 30; i++) {
    pending.push(client.ack("signal", { to: lj.participantId, type: "candidate", payload: { seq: i } }));
    pending.push(lawyer.ack("signal", { to: cj.participantId, type: "candidate", payload: { seq: i } }));
  }
  for (const a of await Promise.all(pending)) {
    assert.equal(a?.ok, true, `candidate ack ${short(a)}`);
  }
  const atLawyer = [];
  const atClient = [];
  for (let i = 0; i < 30; i++) {
    atLawyer.push((await lawyer.waitFor("signal")).payload.seq);
    atClient.push((await client.waitFor("signal")).payload.seq);
  }
  assert.deepEqual(atLawyer, [...Array(30).keys()], "candidates node 2 → node 1 in order");
  assert.deepEqual(atClient, [...Array(30).keys()], "candidates node 1 → node 2 in order");

  note("media state crosses the nodes");
  await client.ok("media:state", { audio: true, video: false, screen: false });
  assert.deepEqual(await lawyer.waitFor("participant:media"), {
    participantId: cj.participantId,
    audio: true,
    video: false,
    screen: false,
  });
  await lawyer.ok("media:state", { audio: true, video: true, screen: true });
  assert.deepEqual(await client.waitFor("participant:media"), {
    participantId: lj.participantId,
    audio: true,
    video: true,
    screen: true,
  });

  note("consent-gated recording across the nodes");
  const started = await lawyer.ok("recording:start");
  assert.equal(started.active, false);
  const request = await client.waitFor("recording:consent-request");
  assert.equal(request.recordingId, started.recordingId);
  await lawyer.never("recording:state", (s) => s.active === true, 300);
  await client.ok("recording:consent", { granted: true, recordingId: started.recordingId });
  for (const p of [lawyer, client]) {
    const state = await p.waitFor("recording:state", (s) => s.active === true);
    assert.equal(state.recordingId, started.recordingId, `${p.name}: ${short(state)}`);
  }

  note("the client's connection to node 2 drops; it resumes on node 1 within the grace period");
  dropTransport(client, { hard: true });
  assert.deepEqual(await lawyer.waitFor("participant:reconnecting"), { participantId: cj.participantId });
  const moved = await connect("client@node1", env.url, env.tokens.client);
  const resumed = await moved.join(id, cj.resumeToken);
  assert.equal(resumed.participantId, cj.participantId, "the same participant on the other node");
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.waiting, false);
  assert.equal(resumed.recording.active, true, `the recording is still on: ${short(resumed.recording)}`);
  assert.deepEqual(await lawyer.waitFor("participant:resumed"), { participantId: cj.participantId });
  await lawyer.ok("signal", { to: cj.participantId, type: "restart", payload: { where: "node 1 now" } });
  assert.deepEqual(await moved.waitFor("signal"), {
    from: lj.participantId,
    type: "restart",
    payload: { where: "node 1 now" },
  });
  await moved.ok("signal", { to: lj.participantId, type: "offer", payload: { after: "resume" } });
  assert.deepEqual((await lawyer.waitFor("signal")).payload, { after: "resume" });

  note("the lawyer stops the recording and ends the consultation");
  await lawyer.ok("recording:stop");
  await moved.waitFor("recording:state", (s) => s.active === false);
  await lawyer.ok("consultation:end");
  await lawyer.waitFor("consultation:ended");
  await moved.waitFor("consultation:ended");
  await expectStatus(env.url2, id, env.tokens.lawyer, "ended");
  await sleep(200);
  assert.deepEqual(lawyer.seen("participant:left", (p) => p.participantId === cj.participantId), [], "never a leave");

  note("joining after the end is refused on both nodes");
  for (const [name, url] of [
    ["late@node1", env.url],
    ["late@node2", env.url2],
  ]) {
    const late = await connect(name, url, env.tokens.client);
    await late.fails("consultation:join", "consultation_closed", { consultationId: id });
  }
});
