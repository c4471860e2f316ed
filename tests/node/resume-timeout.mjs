// Resume after the grace period (the server runs with a short `signaling.resume_grace`): the
// others see `participant:left {reason: "timeout"}`, and the old token gives a fresh participant.
//
// WAKILI_TEST: {url, consultationId, graceMs, tokens: {lawyer, client}}

import { assert, connect, dropTransport, inputs, note, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;
const graceMs = env.graceMs ?? 1000;

scenario("resume after the grace period", async () => {
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  await lawyer.join(id);
  const client = await connect("client", env.url, env.tokens.client);
  const cj = await client.join(id);
  await lawyer.waitFor("participant:joined", (p) => p.participantId === cj.participantId);

  note("the client's TCP connection is destroyed");
  dropTransport(client, { hard: true });
  await lawyer.waitFor("participant:reconnecting", (p) => p.participantId === cj.participantId);
  const droppedAt = Date.now();

  note("after the grace period the lawyer is told the client left (timeout), unprompted");
  const left = await lawyer.waitFor(
    "participant:left",
    (p) => p.participantId === cj.participantId,
    graceMs + 10_000,
  );
  const after = Date.now() - droppedAt;
  assert.deepEqual(left, { participantId: cj.participantId, reason: "timeout" });
  assert.ok(after >= graceMs - 250, `participant:left came ${after} ms after the drop, before the ${graceMs} ms grace`);
  assert.equal(lawyer.seen("participant:resumed").length, 0);

  note("the old resume token no longer resumes: the user gets a fresh participant");
  const back = await connect("client-late", env.url, env.tokens.client);
  const fresh = await back.join(id, cj.resumeToken);
  assert.notEqual(fresh.participantId, cj.participantId, `a new participant: ${short(fresh)}`);
  assert.equal(fresh.resumed, false);
  assert.notEqual(fresh.resumeToken, cj.resumeToken, "a new resume token");
  assert.equal(
    fresh.participants.filter((p) => p.role === "client").length,
    1,
    `one client participant only: ${short(fresh.participants)}`,
  );
  const joined = await lawyer.waitFor("participant:joined", (p) => p.participantId === fresh.participantId);
  assert.equal(joined.role, "client");
});
