// Resume after a dropped connection, within the grace period: same participant, `resumed: true`,
// the others see `participant:reconnecting` then `participant:resumed` and never a leave.
// Twice: once with the engine closed under the client, once with the TCP connection destroyed.
//
// WAKILI_TEST: {url, consultationId, tokens: {lawyer, client}}

import { assert, connect, dropTransport, inputs, note, scenario, short, sleep } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("resume within the grace period", async () => {
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  let client = await connect("client", env.url, env.tokens.client);
  const cj = await client.join(id);
  await lawyer.waitFor("participant:joined", (p) => p.participantId === cj.participantId);
  await client.ok("media:state", { audio: true, video: true, screen: false });
  await lawyer.waitFor("participant:media");

  let resumeToken = cj.resumeToken;
  for (const [round, hard] of [
    [1, false],
    [2, true],
  ]) {
    note(`round ${round}: the client's connection drops (${hard ? "TCP destroyed" : "engine closed"})`);
    dropTransport(client, { hard });
    const reconnecting = await lawyer.waitFor("participant:reconnecting");
    assert.deepEqual(reconnecting, { participantId: cj.participantId });

    note(`round ${round}: the lawyer sees the client as reconnecting`);
    const probe = await connect(`admin-probe-${round}`, env.url, env.tokens.admin);
    const view = (await probe.join(id)).participants.find((p) => p.participantId === cj.participantId);
    assert.equal(view?.reconnecting, true, `the dropped client shows reconnecting: ${short(view)}`);
    await probe.ok("consultation:leave");
    probe.close();

    note(`round ${round}: a new socket resumes with the token`);
    client = await connect(`client-resumed-${round}`, env.url, env.tokens.client);
    const resumed = await client.join(id, resumeToken);
    assert.equal(resumed.participantId, cj.participantId, "the same participant");
    assert.equal(resumed.resumed, true, `resumed: ${short(resumed)}`);
    assert.equal(resumed.waiting, false);
    const me = resumed.participants.find((p) => p.participantId === cj.participantId);
    assert.equal(me.reconnecting, false, `no longer reconnecting: ${short(me)}`);
    assert.deepEqual(me.media, { audio: true, video: true, screen: false }, "media state kept across the resume");
    assert.ok(resumed.participants.some((p) => p.participantId === lj.participantId), "the lawyer is still there");
    assert.deepEqual(await lawyer.waitFor("participant:resumed"), { participantId: cj.participantId });
    resumeToken = resumed.resumeToken;

    note(`round ${round}: signals reach the new socket, and the new socket's reach the lawyer`);
    await lawyer.ok("signal", { to: cj.participantId, type: "restart", payload: { round } });
    assert.deepEqual(await client.waitFor("signal"), { from: lj.participantId, type: "restart", payload: { round } });
    await client.ok("signal", { to: lj.participantId, type: "offer", payload: { round } });
    assert.deepEqual(await lawyer.waitFor("signal"), { from: cj.participantId, type: "offer", payload: { round } });
  }

  note("the lawyer never saw the client leave");
  await sleep(500);
  assert.deepEqual(
    lawyer.seen("participant:left", (p) => p.participantId === cj.participantId),
    [],
    "no participant:left for a resumed participant",
  );
  assert.equal(lawyer.seen("participant:joined", (p) => p.participantId === cj.participantId).length, 1, "joined once");

  note("a resume token is the user's own: the lawyer cannot use the client's");
  const thief = await connect("lawyer-tab-2", env.url, env.tokens.lawyer);
  const stolen = await thief.join(id, resumeToken);
  assert.notEqual(stolen.participantId, cj.participantId, "the lawyer's token cannot take over the client");
});
