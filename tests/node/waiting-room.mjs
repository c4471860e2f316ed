// The waiting room with the default admission (`on_lawyer_join`): a client who arrives first
// waits, cannot signal, and is admitted when the lawyer joins; the consultation is then
// `in_progress` over REST. The client here uses HTTP long-polling only.
//
// WAKILI_TEST: {url, consultationId, tokens: {lawyer, client, admin}}

import { assert, assertParticipant, connect, expectStatus, inputs, note, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("waiting room (admission on lawyer join)", async () => {
  note("an admin is in the call before anyone (admins do not let clients in)");
  const admin = await connect("admin", env.url, env.tokens.admin);
  const aj = await admin.join(id);
  assert.equal(aj.waiting, false, "admins do not wait");
  await expectStatus(env.url, id, env.tokens.lawyer, "scheduled");

  note("the client arrives before the lawyer (long-polling only) and waits");
  const client = await connect("client", env.url, env.tokens.client, { transports: ["polling"] });
  const cj = await client.join(id);
  assert.equal(cj.waiting, true, `the client waits: ${short(cj)}`);
  assertParticipant(
    cj.participants.find((p) => p.participantId === cj.participantId),
    { participantId: cj.participantId, role: "client", waiting: true },
    "the waiting client in its ack",
  );
  const seenByAdmin = await admin.waitFor("participant:joined", (p) => p.participantId === cj.participantId);
  assert.equal(seenByAdmin.waiting, true, `participant:joined shows waiting: ${short(seenByAdmin)}`);

  note("a waiting client cannot signal, but may report its media state");
  await client.fails("signal", "waiting", { to: aj.participantId, type: "offer", payload: { sdp: "v=0" } });
  await client.ok("media:state", { audio: true, video: true, screen: false });
  await admin.never("signal", () => true, 200);

  note("the lawyer joins: the client is admitted");
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  assert.equal(lj.waiting, false);
  const admitted = await client.waitFor("consultation:admitted");
  assert.deepEqual(admitted, { participantId: cj.participantId }, "consultation:admitted names the client");
  const inLawyerAck = lj.participants.find((p) => p.participantId === cj.participantId);
  assert.ok(inLawyerAck, `the client is in the lawyer's participants: ${short(lj.participants)}`);
  if (inLawyerAck.waiting) {
    // The ack may predate the admission; then the lawyer is told of it.
    await lawyer.waitFor("participant:admitted", (p) => p.participantId === cj.participantId);
  }
  await admin.waitFor("participant:admitted", (p) => p.participantId === cj.participantId);
  await client.waitFor("participant:joined", (p) => p.participantId === lj.participantId && p.role === "lawyer");

  note("now the client signals like anyone in the call");
  await client.ok("signal", { to: lj.participantId, type: "offer", payload: { sdp: "v=0 admitted" } });
  assert.deepEqual(await lawyer.waitFor("signal"), {
    from: cj.participantId,
    type: "offer",
    payload: { sdp: "v=0 admitted" },
  });
  await lawyer.ok("signal", { to: cj.participantId, type: "answer", payload: { sdp: "v=0 answer" } });
  assert.equal((await client.waitFor("signal")).payload.sdp, "v=0 answer");

  note("the lawyer's arrival started the consultation");
  const consultation = await expectStatus(env.url, id, env.tokens.lawyer, "in_progress");
  assert.equal(typeof consultation.startedAt, "string", `startedAt in ${short(consultation)}`);
  await expectStatus(env.url, id, env.tokens.client, "in_progress");
});
