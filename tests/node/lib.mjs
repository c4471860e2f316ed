// Shared helpers for the signaling scenarios: read the inputs (WAKILI_TEST_FILE or WAKILI_TEST), connect with the official
// socket.io-client, emit with acknowledgements, wait for events with a timeout, call the REST API.
// Every scenario ends through `scenario(...)`: exit 0 on success, 1 with a message (and the last
// events each peer saw) on failure.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { io } from "socket.io-client";

/** How long any single wait may take. */
export const TIMEOUT_MS = 5000;

/** The scenario's inputs (JSON in WAKILI_TEST): `{url, url2?, consultationId?, tokens?, ...}`. */
export function inputs() {
  const file = process.env.WAKILI_TEST_FILE;
  const raw = file ? readFileSync(file, "utf8") : process.env.WAKILI_TEST;
  if (!raw) {
    throw new Error("set WAKILI_TEST_FILE (a file) or WAKILI_TEST to the scenario's JSON inputs");
  }
  const env = JSON.parse(raw);
  assert.equal(typeof env.url, "string", "WAKILI_TEST.url");
  return env;
}

const peers = [];
let step = "start";

/** Names the step in progress; a failure message says which step failed. */
export function note(what) {
  step = what;
  if (process.env.WAKILI_TEST_VERBOSE) {
    console.log(`-- ${what}`);
  }
}

/** Runs a scenario and exits: 0 on success, 1 with a clear message on failure. */
export function scenario(name, body, { limitMs = 90_000 } = {}) {
  const watchdog = setTimeout(() => {
    report(name, new Error(`scenario took longer than ${limitMs} ms`));
    process.exit(2);
  }, limitMs);
  body()
    .then(() => {
      clearTimeout(watchdog);
      for (const p of peers) {
        p.close();
      }
      console.log(`ok: ${name}`);
      process.exit(0);
    })
    .catch((error) => {
      clearTimeout(watchdog);
      report(name, error);
      process.exit(1);
    });
}

function report(name, error) {
  console.error(`FAILED: ${name}, at step: ${step}`);
  console.error(error?.stack ?? String(error));
  for (const p of peers) {
    console.error(`-- last events seen by ${p.name} (${p.log.length} in all):`);
    for (const item of p.log.slice(-15)) {
      console.error(`   ${item.event} ${short(item.data)}`);
    }
  }
}

export function short(value, max = 300) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) {
    return "undefined";
  }
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
}

/**
 * One socket.io-client connection and everything it received. `log` keeps every server event
 * (and `$disconnect`); `waitFor` consumes the first matching event, already received or not.
 */
export class Peer {
  constructor(name, socket) {
    this.name = name;
    this.socket = socket;
    this.log = [];
    this.waiters = [];
    socket.onAny((event, ...args) => this.#push(event, args[0]));
    socket.on("disconnect", (reason) => this.#push("$disconnect", reason));
    // The transports used, in order (io() opens the engine at once, so nothing is missed).
    const engine = socket.io.engine;
    this.transports = engine ? [engine.transport.name] : [];
    engine?.on("upgrade", (transport) => {
      this.transports.push(transport.name);
      this.#push("$upgrade", transport.name);
    });
    peers.push(this);
  }

  #push(event, data) {
    const item = { event, data, used: false, at: Date.now() };
    this.log.push(item);
    for (const w of [...this.waiters]) {
      if (!item.used && w.matches(item)) {
        item.used = true;
        w.resolve(item.data);
      }
    }
  }

  /** The first not yet consumed `event` whose payload satisfies `pred`, within `ms`. */
  waitFor(event, pred = () => true, ms = TIMEOUT_MS) {
    const matches = (item) => item.event === event && pred(item.data);
    const found = this.log.find((item) => !item.used && matches(item));
    if (found) {
      found.used = true;
      return Promise.resolve(found.data);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        matches,
        resolve: (data) => {
          clearTimeout(timer);
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          resolve(data);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        const seen = this.log.filter((i) => i.event === event).map((i) => short(i.data, 200));
        reject(
          new Error(
            `${this.name}: no matching "${event}" within ${ms} ms` +
              (seen.length ? `; "${event}" events seen: ${seen.join(", ")}` : `; none seen`),
          ),
        );
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** Every received `event` (consumed or not) whose payload satisfies `pred`. */
  seen(event, pred = () => true) {
    return this.log.filter((i) => i.event === event && pred(i.data)).map((i) => i.data);
  }

  /** Asserts that no `event` matching `pred` arrived (after waiting `settleMs`). */
  async never(event, pred = () => true, settleMs = 300) {
    await sleep(settleMs);
    const got = this.seen(event, pred);
    assert.equal(
      got.length,
      0,
      `${this.name} must not receive "${event}" here, got ${short(got)}`,
    );
  }

  /** Emits with an acknowledgement (5 s timeout) and returns the ack. */
  async ack(event, ...args) {
    try {
      return await this.socket.timeout(TIMEOUT_MS).emitWithAck(event, ...args);
    } catch (error) {
      throw new Error(`${this.name}: no ack for "${event}" within ${TIMEOUT_MS} ms (${error.message})`);
    }
  }

  /** Emits, asserts `{ok: true}` and returns the ack. */
  async ok(event, ...args) {
    const answer = await this.ack(event, ...args);
    assert.ok(
      answer && answer.ok === true,
      `${this.name}: "${event}" ${short(args)} should succeed, ack was ${short(answer)}`,
    );
    return answer;
  }

  /** Emits, asserts `{ok: false, error: {code}}` with a message, and returns the error. */
  async fails(event, code, ...args) {
    const answer = await this.ack(event, ...args);
    expectError(answer, code, `${this.name}: "${event}" ${short(args)}`);
    return answer.error;
  }

  /** `consultation:join`; asserts success and the ack's shape. */
  async join(consultationId, resumeToken) {
    const payload = resumeToken ? { consultationId, resumeToken } : { consultationId };
    const joined = await this.ok("consultation:join", payload);
    for (const field of ["participantId", "resumeToken", "qualityProfile"]) {
      assert.equal(typeof joined[field], "string", `${this.name}: join ack ${field} in ${short(joined)}`);
    }
    assert.ok(["p2p", "sfu", "auto"].includes(joined.mediaMode), `${this.name}: join ack mediaMode in ${short(joined)}`);
    assert.ok(Array.isArray(joined.participants), `${this.name}: join ack participants in ${short(joined)}`);
    assert.equal(typeof joined.waiting, "boolean", `${this.name}: join ack waiting`);
    assert.equal(typeof joined.resumed, "boolean", `${this.name}: join ack resumed`);
    assert.equal(typeof joined.recording?.active, "boolean", `${this.name}: join ack recording`);
    assert.ok(
      joined.participants.some((p) => p.participantId === joined.participantId),
      `${this.name}: the joiner is in participants: ${short(joined.participants)}`,
    );
    this.participantId = joined.participantId;
    this.resumeToken = joined.resumeToken;
    return joined;
  }

  get connected() {
    return this.socket.connected;
  }

  close() {
    this.socket.disconnect();
  }
}

export function expectError(answer, code, what) {
  assert.ok(answer && answer.ok === false, `${what} should fail with ${code}, ack was ${short(answer)}`);
  assert.equal(answer.error?.code, code, `${what}: error code (ack ${short(answer)})`);
  assert.ok(
    typeof answer.error.message === "string" && answer.error.message.length > 0,
    `${what}: error message in ${short(answer)}`,
  );
}

function options(token, extra) {
  return {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: TIMEOUT_MS,
    ...(token === undefined ? {} : { auth: { token } }),
    ...extra,
  };
}

/** Connects (websocket unless `extra.transports` says otherwise) and waits for `connect`. */
export async function connect(name, url, token, extra = {}) {
  const socket = io(url, options(token, extra));
  const peer = new Peer(name, socket);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name}: not connected to ${url} within ${TIMEOUT_MS} ms`)),
      TIMEOUT_MS,
    );
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${name}: connect_error "${err.message}" from ${url}`));
    });
  });
  return peer;
}

/** Connects expecting a refusal; returns the `connect_error` error. `auth` is sent as given. */
export async function refused(name, url, auth, extra = {}) {
  const socket = io(url, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: TIMEOUT_MS,
    ...(auth === undefined ? {} : { auth }),
    ...extra,
  });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name}: neither connect nor connect_error within ${TIMEOUT_MS} ms`)),
        TIMEOUT_MS,
      );
      socket.once("connect", () => {
        clearTimeout(timer);
        reject(new Error(`${name}: the server accepted a connection it must refuse`));
      });
      socket.once("connect_error", (err) => {
        clearTimeout(timer);
        resolve(err);
      });
    });
  } finally {
    socket.disconnect();
  }
}

/** Resolves when `peer`'s socket is disconnected, with the reason. */
export function disconnected(peer, ms = TIMEOUT_MS) {
  if (!peer.socket.connected) {
    const last = peer.seen("$disconnect").at(-1);
    return Promise.resolve(last ?? "not connected");
  }
  return peer.waitFor("$disconnect", () => true, ms);
}

/** Closes the transport under the client without a Socket.IO disconnect packet. */
export function dropTransport(peer, { hard = false } = {}) {
  const engine = peer.socket.io.engine;
  const raw = engine?.transport?.ws?._socket;
  if (hard && raw) {
    // The TCP connection goes away without a WebSocket close frame, as when a phone loses signal.
    raw.destroy();
  } else {
    engine.close();
  }
}

/** REST call with a bearer token; returns `{status, body}`. */
export async function rest(base, method, path, token, body) {
  const response = await fetch(new URL(path, base), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: response.status, body: parsed };
}

/** Polls `GET /api/v1/consultations/{id}` until its status is `status`. */
export async function expectStatus(base, consultationId, token, status, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await rest(base, "GET", `/api/v1/consultations/${consultationId}`, token);
    if (last.status === 200 && last.body?.status === status) {
      return last.body;
    }
    await sleep(100);
  }
  assert.fail(`consultation ${consultationId} should be "${status}" over REST, got ${last.status} ${short(last.body)}`);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A participant entry of `participants` with the fields the protocol promises. */
export function assertParticipant(view, { participantId, role, waiting, reconnecting }, what) {
  assert.equal(view?.participantId, participantId, `${what}: participantId in ${short(view)}`);
  assert.equal(typeof view.userId, "string", `${what}: userId`);
  assert.equal(typeof view.name, "string", `${what}: name`);
  assert.equal(view.role, role, `${what}: role`);
  for (const m of ["audio", "video", "screen"]) {
    assert.equal(typeof view.media?.[m], "boolean", `${what}: media.${m} in ${short(view)}`);
  }
  if (waiting !== undefined) {
    assert.equal(view.waiting, waiting, `${what}: waiting in ${short(view)}`);
  }
  if (reconnecting !== undefined) {
    assert.equal(view.reconnecting, reconnecting, `${what}: reconnecting in ${short(view)}`);
  }
}

/** A nested payload with unicode, to check that signals arrive byte for byte. */
export function richPayload(kind) {
  return {
    kind,
    sdp: `v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n`,
    note: "Habari za asubuhi — ünïcödé, 中文, العربية, emoji 🙂👩🏽‍⚖️, quote \" backslash \\ tab \t",
    nested: { levels: [1, 2.5, -3e-7, { deep: [null, true, false, { deeper: "ok" }] }], empty: {}, none: [] },
    big: 12345678901234,
  };
}

/** A quality report; `bad` is a lossy, laggy, starved connection. */
export function qualityReport(bad) {
  return bad
    ? {
        rttMs: 900,
        jitterMs: 120,
        packetLossPct: 25,
        outboundKbps: 120,
        inboundKbps: 100,
        frameRate: 8,
        width: 320,
        height: 180,
        candidateType: "relay",
      }
    : {
        rttMs: 20,
        jitterMs: 2,
        packetLossPct: 0,
        outboundKbps: 2500,
        inboundKbps: 2500,
        frameRate: 30,
        width: 1280,
        height: 720,
        candidateType: "host",
      };
}

export { assert };
