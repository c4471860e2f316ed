// A token that expires during the call (the server runs with a short `signaling.expiry_warning`
// and the scenario gets tokens that live a few seconds): a client that answers `auth:expiring`
// with `auth:refresh` stays in the call; one that does not is closed with
// `session:closed {reason: "token_expired"}` and its peers see it reconnecting.
//
// WAKILI_TEST: {url, consultationId, tokens: {lawyer, shortClient, shortClientAgain, longClient,
//               shortLawyerOtherUser}}

import { assert, connect, disconnected, inputs, note, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("token refresh", async () => {
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);

  note("the client joins with a token of a few seconds and refreshes it when warned");
  const client = await connect("client", env.url, env.tokens.shortClient);
  const cj = await client.join(id);
  const warning = await client.waitFor("auth:expiring", () => true, 10_000);
  assert.equal(typeof warning.expiresAt, "string", `auth:expiring ${short(warning)}`);
  assert.equal(typeof warning.closesInSeconds, "number", `auth:expiring ${short(warning)}`);
  await client.fails("auth:refresh", "forbidden", { token: env.tokens.shortLawyerOtherUser });
  await client.fails("auth:refresh", "unauthorized", { token: "not-a-jwt" });
  await client.fails("auth:refresh", "bad_request", { nope: 1 });
  const refreshed = await client.ok("auth:refresh", { token: env.tokens.longClient });
  assert.ok(Date.parse(refreshed.expiresAt) > Date.now() + 60_000, `auth:refresh ack ${short(refreshed)}`);

  note("a second connection with the same short token does not refresh: it is closed at expiry");
  const other = await connect("client (no refresh)", env.url, env.tokens.shortClientAgain);
  const closed = await other.waitFor("session:closed", () => true, 10_000);
  assert.equal(closed.reason, "token_expired", `session:closed ${short(closed)}`);
  assert.equal(await disconnected(other), "io server disconnect");

  note("past the first token's expiry, the refreshed client is still in the call");
  assert.ok(client.connected, "the refreshed client stays connected");
  await lawyer.ok("signal", { to: cj.participantId, type: "offer", payload: { n: 1 } });
  assert.deepEqual((await client.waitFor("signal")).payload, { n: 1 });
  await client.ok("signal", { to: lj.participantId, type: "answer", payload: { n: 2 } });
  assert.deepEqual((await lawyer.waitFor("signal")).payload, { n: 2 });
  await lawyer.never("participant:reconnecting", (p) => p.participantId === cj.participantId, 0);
});
