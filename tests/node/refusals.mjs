// What the server refuses, and that refusing never breaks it: bad, missing, expired and wrongly
// signed tokens; strangers; unknown consultations; oversized and malformed events; a flood.
//
// WAKILI_TEST: {url, consultationId, unknownConsultationId, cancelledConsultationId?, maxPacketBytes?,
//               tokens: {lawyer, client, stranger, strangerLawyer, admin, expired, badSignature, garbage}}

import {
  assert,
  connect,
  disconnected,
  expectError,
  inputs,
  note,
  refused,
  scenario,
  short,
  sleep,
} from "./lib.mjs";

const env = inputs();
const id = env.consultationId;

scenario("refusals", async () => {
  note("tokens that are missing, malformed, expired or wrongly signed are refused at connect");
  const cases = [
    ["no auth at all", undefined, {}],
    ["auth without a token", {}, {}],
    ["a number as token", { token: 42 }, {}],
    ["an empty token", { token: "" }, {}],
    ["a garbage token", { token: env.tokens.garbage ?? "not-a-jwt" }, {}],
    ["an expired token", { token: env.tokens.expired }, {}],
    ["a token signed with another key", { token: env.tokens.badSignature }, {}],
    ["a garbage token over polling", { token: "not.a.jwt" }, { transports: ["polling"] }],
  ];
  for (const [what, auth, extra] of cases) {
    if (auth && "token" in auth && auth.token === undefined) {
      throw new Error(`WAKILI_TEST lacks the token for: ${what}`);
    }
    const err = await refused(what, env.url, auth, extra);
    assert.equal(err.message, "unauthorized", `${what}: connect_error message`);
  }

  note("a stranger with a valid token may not join; unknown consultations are not found");
  const stranger = await connect("stranger", env.url, env.tokens.stranger);
  await stranger.fails("consultation:join", "forbidden", { consultationId: id });
  const otherLawyer = await connect("another lawyer", env.url, env.tokens.strangerLawyer);
  await otherLawyer.fails("consultation:join", "forbidden", { consultationId: id });
  if (env.cancelledConsultationId) {
    const lawyerOfCancelled = await connect("lawyer (cancelled)", env.url, env.tokens.lawyer);
    await lawyerOfCancelled.fails("consultation:join", "consultation_closed", { consultationId: env.cancelledConsultationId });
    lawyerOfCancelled.close();
  }
  await stranger.fails("consultation:join", "not_found", { consultationId: env.unknownConsultationId });
  await stranger.fails("signal", "not_joined", { to: "anyone", type: "offer", payload: {} });
  await stranger.fails("media:state", "not_joined", { audio: true, video: true, screen: true });

  note("malformed joins get bad_request");
  await stranger.fails("consultation:join", "bad_request", 42);
  await stranger.fails("consultation:join", "bad_request", "a string");
  await stranger.fails("consultation:join", "bad_request", {});
  await stranger.fails("consultation:join", "bad_request", { consultationId: 7 });
  await stranger.fails("consultation:join", "bad_request");
  await stranger.fails("no:such-event", "unknown_event", { x: 1 });
  await stranger.fails("no:such-event", "unknown_event");
  stranger.socket.emit("consultation:join", 42); // no ack: dropped, nothing comes back
  stranger.socket.emit("no:such-event");
  await stranger.fails("consultation:join", "not_found", { consultationId: env.unknownConsultationId });
  assert.ok(stranger.connected, "refusals do not close the connection");

  note("the lawyer and the client join");
  const lawyer = await connect("lawyer", env.url, env.tokens.lawyer);
  const lj = await lawyer.join(id);
  const client = await connect("client", env.url, env.tokens.client);
  const cj = await client.join(id);
  await lawyer.fails("consultation:join", "already_joined", { consultationId: id });
  await client.fails("consultation:end", "forbidden");
  await client.fails("participant:admit", "forbidden", { participantId: lj.participantId });

  note("malformed events of joined participants get bad_request or unknown_event");
  const to = cj.participantId;
  await lawyer.fails("signal", "bad_request", { type: "offer", payload: { sdp: "x" } });
  await lawyer.fails("signal", "bad_request", { to, type: "bogus", payload: {} });
  await lawyer.fails("signal", "bad_request", { to: 5, type: "offer", payload: {} });
  await lawyer.fails("signal", "bad_request", "offer");
  await lawyer.fails("signal", "bad_request");
  await lawyer.fails("signal", "not_found", { to: "no-such-participant", type: "offer", payload: {} });
  await lawyer.fails("signal", "bad_request", { to: lj.participantId, type: "offer", payload: {} }); // to oneself
  await lawyer.fails("media:state", "bad_request", { audio: "yes", video: true, screen: false });
  await lawyer.fails("media:state", "bad_request", 1);
  await lawyer.fails("quality:report", "bad_request", { rttMs: "fast" });
  await lawyer.fails("quality:report", "bad_request", { rttMs: -5, jitterMs: 1, packetLossPct: 0, outboundKbps: 1, inboundKbps: 1, frameRate: 1, width: 1, height: 1, candidateType: "host" });
  await lawyer.fails("participant:admit", "bad_request", { who: "?" });
  await lawyer.fails("recording:consent", "bad_request", { granted: "maybe" });
  await lawyer.fails("Signal", "unknown_event", { to, type: "offer", payload: {} });
  lawyer.socket.emit("signal", { type: "offer" }); // no ack: dropped silently
  lawyer.socket.emit("totally:unknown", { a: 1 });

  note("a signal payload over 64 KiB is refused with payload_too_large; the connection stays usable");
  const huge = { sdp: "x".repeat(70 * 1024) };
  await lawyer.fails("signal", "payload_too_large", { to, type: "offer", payload: huge });
  const justUnder = { sdp: "y".repeat(60 * 1024), note: "just under the limit ✓" };
  await lawyer.ok("signal", { to, type: "offer", payload: justUnder });
  const got = await client.waitFor("signal");
  assert.deepEqual(got, { from: lj.participantId, type: "offer", payload: justUnder }, "the 60 KiB signal arrives intact");
  await client.never("signal", (s) => s.payload?.sdp?.startsWith("x"), 0);
  assert.ok(lawyer.connected && client.connected, "both still connected");

  note("a flood of 1,000 events at 1,000/s (20× the rate) gets rate_limited acks, then session:closed");
  await floodIsCut(client, { count: 1000, chunk: 10, pauseMs: 10 });

  note("the server keeps serving the others");
  const start = Date.now();
  await lawyer.ok("media:state", { audio: false, video: true, screen: false });
  assert.ok(Date.now() - start < 2000, "the lawyer's ack comes promptly after the flood");
  await lawyer.waitFor("participant:reconnecting", (p) => p.participantId === cj.participantId);
  const back = await connect("client-back", env.url, env.tokens.client);
  const rejoined = await back.join(id, cj.resumeToken);
  assert.equal(rejoined.participantId, cj.participantId, "the closed client can resume");
  await lawyer.waitFor("participant:resumed", (p) => p.participantId === cj.participantId);
  await lawyer.ok("signal", { to, type: "restart", payload: { after: "flood" } });
  assert.deepEqual((await back.waitFor("signal")).payload, { after: "flood" });
  const other = await connect("admin-after", env.url, env.tokens.admin);
  await other.join(id);
  await sleep(50);
  assert.ok(stranger.connected, "untouched connections stay open");

  // Last, each on its own, so that everything above is proven even when one of these fails.
  const problems = [];
  const check = async (what, body) => {
    note(what);
    try {
      await body();
    } catch (error) {
      problems.push(`${what}: ${error.message}`);
    }
  };
  for (const transports of [["polling"], ["websocket"]]) {
    const size = (env.maxPacketBytes ?? 128 * 1024) + 64 * 1024;
    await check(`a ${size}-byte packet (over max_packet_bytes) closes that connection only (${transports})`, async () => {
      const bulky = await connect(`stranger-bulky-${transports}`, env.url, env.tokens.stranger, { transports });
      bulky.socket.emit("no:such-event", { blob: "z".repeat(size) });
      const reason = await disconnected(bulky).catch(() => "still connected after 5 s");
      assert.ok(
        ["transport close", "transport error", "io server disconnect"].includes(reason),
        `the connection must be closed (docs/signaling.md, Limits); got: ${reason}`,
      );
      await lawyer.ok("media:state", { audio: true, video: true, screen: false });
    });
  }
  await check("2,000 events in one burst get rate_limited acks, then session:closed", async () => {
    await floodIsCut(back, { count: 2000, chunk: 2000, pauseMs: 0 });
    await lawyer.ok("media:state", { audio: false, video: false, screen: false });
    const again = await connect("client-again", env.url, env.tokens.client);
    await again.join(id, cj.resumeToken);
  });
  assert.deepEqual(problems, [], "every late check holds");
});

/**
 * Sends `count` media:state events, `chunk` at a time with `pauseMs` between chunks, and asserts
 * the protocol's answer to a flood: some pass, then rate_limited acks, then `session:closed
 * {reason: "rate_limited"}` and a server-side disconnect, before all events were answered.
 */
async function floodIsCut(peer, { count, chunk, pauseMs }) {
  const acks = { ok: 0, rate_limited: 0, other: [] };
  // A client that is told `session:closed` stops sending, as docs/signaling.md asks; one that
  // keeps writing while the server closes gets a TCP reset, which can swallow the close packet.
  const told = () => peer.seen("session:closed").length > 0;
  for (let i = 0; i < count && peer.connected && !told(); i++) {
    peer.socket.emit("media:state", { audio: i % 2 === 0, video: true, screen: false }, (answer) => {
      if (answer?.ok === true) {
        acks.ok += 1;
      } else if (answer?.error?.code === "rate_limited") {
        acks.rate_limited += 1;
        expectError(answer, "rate_limited", "a flooded event");
      } else {
        acks.other.push(answer);
      }
    });
    if ((i + 1) % chunk === 0 && pauseMs > 0) {
      await sleep(pauseMs);
    }
  }
  const closed = await peer.waitFor("session:closed", () => true, 10_000).catch((error) => {
    const ended = peer.seen("$disconnect").map((r) => `"${r}"`).join(", ") || "no";
    throw new Error(
      `${error.message}; acks received: ok ${acks.ok}, rate_limited ${acks.rate_limited}, ` +
        `other ${acks.other.length}; disconnect: ${ended}`,
    );
  });
  assert.equal(closed.reason, "rate_limited", `session:closed ${short(closed)}`);
  assert.equal(typeof closed.message, "string");
  const why = await disconnected(peer, 10_000);
  assert.equal(why, "io server disconnect", "the server closes the flooder (a client does not reconnect by itself)");
  assert.ok(acks.ok > 0, `some events passed before the limit: ${short(acks)}`);
  assert.ok(acks.rate_limited > 0, `some events got rate_limited: ${short(acks)}`);
  assert.ok(acks.ok + acks.rate_limited < count, `closed before all ${count} events: ${short(acks)}`);
  assert.deepEqual(acks.other, [], "no other answers to the flood");
}
