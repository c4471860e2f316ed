// The waiting room with `signaling.admission = "manual"`: the client waits even when the lawyer
// is there, until the lawyer sends `participant:admit`.
//
// WAKILI_TEST: {url, consultationId, tokens: {lawyer, client}}

import { assert, connect, inputs, note, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("waiting room (manual admission)", async () => {
  note("the client arrives first and waits");
  const client = await connect("client", env.url, env.tokens.client);
  const cj = await client.join(id);
  assert.equal(cj.waiting, true, `the client waits: ${short(cj)}`);

  note("the lawyer joins: with manual admission the client still waits");
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  const waitingClient = lj.participants.find((p) => p.participantId === cj.participantId);
  assert.equal(waitingClient?.waiting, true, `the lawyer sees the client waiting: ${short(lj.participants)}`);
  await client.never("consultation:admitted", () => true, 500);
  await client.fails("signal", "waiting", { to: lj.participantId, type: "offer", payload: { sdp: "v=0" } });

  note("a client cannot admit anyone, and the lawyer cannot admit an unknown participant");
  await client.fails("participant:admit", "forbidden", { participantId: cj.participantId });
  await lawyer.fails("participant:admit", "not_found", { participantId: "no-such-participant" });

  note("the lawyer admits the client");
  await lawyer.ok("participant:admit", { participantId: cj.participantId });
  assert.deepEqual(await client.waitFor("consultation:admitted"), { participantId: cj.participantId });
  assert.deepEqual(await lawyer.waitFor("participant:admitted"), { participantId: cj.participantId });
  await lawyer.fails("participant:admit", "forbidden", { participantId: cj.participantId });

  note("signals flow both ways once admitted");
  await client.ok("signal", { to: lj.participantId, type: "offer", payload: { sdp: "manual offer" } });
  assert.deepEqual(await lawyer.waitFor("signal"), {
    from: cj.participantId,
    type: "offer",
    payload: { sdp: "manual offer" },
  });
  await lawyer.ok("signal", { to: cj.participantId, type: "answer", payload: { sdp: "manual answer" } });
  assert.deepEqual(await client.waitFor("signal"), {
    from: lj.participantId,
    type: "answer",
    payload: { sdp: "manual answer" },
  });

  note("a second client connection of the same user replaces the first and waits again");
  const again = await connect("client-tab-2", env.url, env.tokens.client);
  const second = await again.join(id);
  assert.notEqual(second.participantId, cj.participantId, "a new participant (no resume token)");
  assert.equal(second.waiting, true, "manual admission: the new participant waits");
  const closed = await client.waitFor("session:closed");
  assert.equal(closed.reason, "replaced", `session:closed ${short(closed)}`);
  const left = await lawyer.waitFor("participant:left", (p) => p.participantId === cj.participantId);
  assert.equal(left.reason, "replaced");
  await client.waitFor("$disconnect");
});
