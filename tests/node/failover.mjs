// Calls that outlive their nodes. Three nodes behind HAProxy (deploy/haproxy/haproxy.cfg as
// shipped) share PostgreSQL and Redis; `calls` consultations each hold a lawyer on WebSocket and a
// client on long-polling only (cookies kept, as a browser does). Whenever a participant's
// connection drops, it does what the SDK does: reconnects through the balancer and resumes with
// its resume token, until it is back or `graceMs` has passed.
//
// Driven by the Rust test over stdin, one command per line, answered on stdout:
//   (start)  → `READY {participants}` once every call is up and signals flow both ways.
//   check    → `OK {resumes, slowestMs}` once every participant is connected again as the same
//              participant, and signals flow both ways in every call, in order.
//   end      → the lawyers end their consultations; `ok: …` and exit 0.
// Any broken promise (a participant not back within the grace, a fresh participant instead of
// a resumed one, a lost or reordered signal, a call ended) fails the scenario.
//
// WAKILI_TEST_FILE: {lb, consultations: [id…], tokens: {lawyer: [..], client: [..]}, graceMs}

import { createInterface } from "node:readline";

import { assert, connect, inputs, note, scenario, short, sleep } from "./lib.mjs";

const env = inputs();
const polling = { transports: ["polling"], withCredentials: true };

/** A participant that comes back by itself, as the SDK does. */
class Resilient {
  constructor(name, token, consultationId, extra) {
    Object.assign(this, { name, token, consultationId, extra });
    this.resumes = 0;
    this.slowestMs = 0;
    this.failure = null;
    this.back = Promise.resolve();
  }

  async start() {
    this.peer = await connect(this.name, env.lb, this.token, this.extra);
    this.joined = await this.peer.join(this.consultationId);
    this.participantId = this.joined.participantId;
    this.#watch();
    return this.joined;
  }

  #watch() {
    this.peer.socket.once("disconnect", () => {
      drops += 1;
      this.back = this.#resume(Date.now()).catch((error) => {
        this.failure = error;
      });
    });
  }

  async #resume(lostAt) {
    let lastError;
    while (Date.now() - lostAt < env.graceMs) {
      try {
        const peer = await connect(this.name, env.lb, this.token, this.extra);
        const joined = await peer.join(this.consultationId, this.peer.resumeToken);
        assert.equal(joined.participantId, this.participantId, `${this.name}: the same participant`);
        assert.equal(joined.resumed, true, `${this.name}: resumed, not joined afresh: ${short(joined)}`);
        this.peer = peer;
        this.resumes += 1;
        this.slowestMs = Math.max(this.slowestMs, Date.now() - lostAt);
        this.#watch();
        return;
      } catch (error) {
        lastError = error;
        await sleep(200);
      }
    }
    throw new Error(`${this.name}: not back within ${env.graceMs} ms: ${lastError?.message}`);
  }

  /** Connected and resumed (throws what went wrong otherwise). */
  async ready() {
    const deadline = Date.now() + env.graceMs;
    for (;;) {
      await this.back;
      if (this.failure) throw this.failure;
      if (this.peer.connected) return;
      // Dropped again after the last resume: its new attempt is under way.
      assert.ok(Date.now() < deadline, `${this.name}: not connected within ${env.graceMs} ms`);
      await sleep(100);
    }
  }
}

const calls = env.consultations.map((id, i) => ({
  lawyer: new Resilient(`lawyer${i}`, env.tokens.lawyer[i], id, {}),
  client: new Resilient(`client${i}`, env.tokens.client[i], id, polling),
}));
const everyone = calls.flatMap((c) => [c.lawyer, c.client]);
let round = 0;
/** Connections lost so far (a node going away drops them a moment after the command). */
let drops = 0;

async function signalsBothWays({ lawyer, client }) {
  round += 1;
  const n = 10;
  for (let i = 0; i < n; i++) {
    await client.peer.ok("signal", { to: lawyer.participantId, type: "candidate", payload: { round, seq: i } });
    await lawyer.peer.ok("signal", { to: client.participantId, type: "candidate", payload: { round, seq: i } });
  }
  const ofRound = (s) => s?.payload?.round === round;
  const atLawyer = [];
  const atClient = [];
  for (let i = 0; i < n; i++) {
    atLawyer.push((await lawyer.peer.waitFor("signal", ofRound)).payload.seq);
    atClient.push((await client.peer.waitFor("signal", ofRound)).payload.seq);
  }
  assert.deepEqual(atLawyer, [...Array(n).keys()], `${client.name} → ${lawyer.name} in order`);
  assert.deepEqual(atClient, [...Array(n).keys()], `${lawyer.name} → ${client.name} in order`);
}

/** Everyone connected and signalling. A round that a connection drop interrupted (the client
 * had not yet noticed its node going when the round started) is run again once everyone is
 * back; a round without a drop must deliver everything. */
async function allUp() {
  for (;;) {
    const before = drops;
    try {
      for (const p of everyone) await p.ready();
      for (const call of calls) await signalsBothWays(call);
      return;
    } catch (error) {
      if (drops === before) throw error;
      note(`round ${round} interrupted by a dropped connection; again`);
    }
  }
}

scenario(
  "calls resume through the balancer when their nodes go",
  async () => {
    note("every call starts through the balancer: the client waits, the lawyer admits it");
    for (const call of calls) {
      const cj = await call.client.start();
      assert.equal(cj.waiting, true, short(cj));
      await call.lawyer.start();
      await call.client.peer.waitFor("consultation:admitted");
    }
    await allUp();
    console.log(`READY ${JSON.stringify({ participants: everyone.length })}`);

    const commands = createInterface({ input: process.stdin });
    for await (const line of commands) {
      const command = line.trim();
      if (command === "check") {
        note(`check ${round}: everyone back and signalling`);
        await allUp();
        const resumes = everyone.reduce((sum, p) => sum + p.resumes, 0);
        const slowestMs = Math.max(...everyone.map((p) => p.slowestMs));
        console.log(`OK ${JSON.stringify({ resumes, slowestMs })}`);
      } else if (command === "end") {
        note("the lawyers end their calls");
        for (const call of calls) {
          await call.lawyer.peer.ok("consultation:end");
          await call.client.peer.waitFor("consultation:ended");
        }
        break;
      }
    }
  },
  { limitMs: 600_000 },
);
