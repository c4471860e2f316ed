// Consent-gated recording: nothing records until every other participant has consented; a
// refusal ends the attempt and is told to the lawyer; only the lawyer records; every decision
// and the joins are in the audit log.
//
// WAKILI_TEST: {url, consultationId, noticeVersion?, tokens: {lawyer, client}, users: {lawyer, client}}

import { assert, connect, inputs, note, rest, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("consent-gated recording", async () => {
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  const client = await connect("client", env.url, env.tokens.client);
  const cj = await client.join(id);
  assert.equal(cj.recording.active, false);

  note("only the lawyer may record or stop");
  await client.fails("recording:start", "forbidden");
  await lawyer.fails("recording:stop", "invalid_state");
  await client.fails("recording:consent", "invalid_state", { granted: true });

  note("the lawyer starts a recording: the client is asked, nothing records yet");
  const started = await lawyer.ok("recording:start");
  assert.equal(typeof started.recordingId, "string", `recordingId in ${short(started)}`);
  assert.equal(started.active, false, "not active before consent");
  assert.deepEqual(started.pending, [cj.participantId], "the client must consent");
  const request = await client.waitFor("recording:consent-request");
  assert.equal(request.recordingId, started.recordingId, `consent request ${short(request)}`);
  assert.equal(typeof request.noticeVersion, "string");
  if (env.noticeVersion) {
    assert.equal(request.noticeVersion, env.noticeVersion, "the configured notice version");
  }
  await lawyer.never("recording:consent-request", () => true, 0);
  await lawyer.fails("recording:start", "invalid_state");
  await lawyer.never("recording:state", (s) => s.active === true, 300);
  await client.never("recording:state", (s) => s.active === true, 0);

  note("the client grants: everyone sees the recording on");
  await client.ok("recording:consent", { granted: true, recordingId: started.recordingId });
  for (const p of [lawyer, client]) {
    const state = await p.waitFor("recording:state", (s) => s.active === true);
    assert.equal(state.recordingId, started.recordingId, `${p.name}: ${short(state)}`);
    assert.ok(
      [lj.participantId, env.users?.lawyer].includes(state.by),
      `${p.name}: recording:state.by names the lawyer (participant or user id): ${short(state)}`,
    );
  }
  await client.fails("recording:consent", "invalid_state", { granted: true, recordingId: started.recordingId });

  note("a newcomer's join shows the recording");
  const probe = await connect("admin-probe", env.url, env.tokens.admin);
  const seen = await probe.join(id);
  // An admin joining an active recording must consent too: the recording pauses.
  assert.equal(seen.recording.recordingId, started.recordingId, `recording in join ack ${short(seen.recording)}`);
  const needed = await lawyer.waitFor("recording:consent-needed");
  assert.equal(needed.participantId, seen.participantId, `consent-needed ${short(needed)}`);
  const paused = await client.waitFor("recording:state", (s) => s.active === false);
  assert.equal(paused.reason, "consent_pending", `paused ${short(paused)}`);
  await probe.waitFor("recording:consent-request", (r) => r.recordingId === started.recordingId);
  await probe.ok("recording:consent", { granted: true, recordingId: started.recordingId });
  await client.waitFor("recording:state", (s) => s.active === true);
  await lawyer.waitFor("recording:state", (s) => s.active === false && s.reason === "consent_pending");
  await lawyer.waitFor("recording:state", (s) => s.active === true);
  await probe.ok("consultation:leave");
  probe.close();

  note("the lawyer stops: everyone sees it off");
  await lawyer.ok("recording:stop");
  for (const p of [lawyer, client]) {
    const state = await p.waitFor("recording:state", (s) => s.active === false);
    assert.equal(state.active, false);
  }

  note("a second attempt is refused by the client");
  const second = await lawyer.ok("recording:start");
  assert.notEqual(second.recordingId, started.recordingId, "a new recording id");
  const request2 = await client.waitFor("recording:consent-request");
  assert.equal(request2.recordingId, second.recordingId);
  await client.ok("recording:consent", { granted: false, recordingId: second.recordingId });
  const refusedNotice = await lawyer.waitFor("recording:consent-refused");
  assert.equal(refusedNotice.participantId, cj.participantId, `consent-refused ${short(refusedNotice)}`);
  if (env.users?.client) {
    assert.equal(refusedNotice.userId, env.users.client);
  }
  for (const p of [lawyer, client]) {
    const state = await p.waitFor("recording:state", (s) => s.active === false);
    assert.equal(state.reason, "consent_refused", `${p.name}: ${short(state)}`);
  }
  await client.never("recording:consent-refused", () => true, 0);
  await lawyer.never("recording:state", (s) => s.active === true && s.recordingId === second.recordingId, 300);

  note("the audit log has the joins and both consent decisions");
  const audit = await rest(env.url, "GET", `/api/v1/consultations/${id}/audit`, env.tokens.lawyer);
  assert.equal(audit.status, 200, `audit log: ${short(audit.body)}`);
  assert.ok(Array.isArray(audit.body), "the audit log is a list");
  const entries = audit.body;
  const text = (e) => JSON.stringify(e);
  const about = (e, user) => e.actorId === user || text(e.detail).includes(user);
  const decisions = entries.filter((e) => /consent/.test(e.action));
  const grants = decisions.filter(
    (e) => /grant/.test(e.action) || e.detail?.granted === true,
  );
  const refusals = decisions.filter(
    (e) => /refus/.test(e.action) || e.detail?.granted === false,
  );
  const listing = entries.map((e) => `${e.action} ${e.actorId} ${text(e.detail)}`).join("\n  ");
  assert.ok(grants.length >= 1, `a consent grant in the audit log:\n  ${listing}`);
  assert.ok(refusals.length >= 1, `a consent refusal in the audit log:\n  ${listing}`);
  if (env.users) {
    assert.ok(grants.some((e) => about(e, env.users.client)), `the client's grant is attributed to them:\n  ${listing}`);
    assert.ok(refusals.some((e) => about(e, env.users.client)), `the client's refusal is attributed to them:\n  ${listing}`);
    const joins = entries.filter((e) => /join/.test(e.action));
    assert.ok(joins.some((e) => about(e, env.users.lawyer)), `the lawyer's join:\n  ${listing}`);
    assert.ok(joins.some((e) => about(e, env.users.client)), `the client's join:\n  ${listing}`);
  }
  for (const e of entries) {
    assert.equal(e.consultationId, id);
    assert.equal(typeof e.createdAt, "string");
  }
  const clientView = await rest(env.url, "GET", `/api/v1/consultations/${id}/audit`, env.tokens.client);
  assert.equal(clientView.status, 403, "clients cannot read the audit log");
});
