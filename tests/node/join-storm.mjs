// No lost joins: many connections open at a high rate and each sends consultation:join the
// moment it is connected. Every join must be acknowledged with ok: true. (A bare socketioxide
// server lost ~1.3 % of such joins, because events that arrive before the connect handler has
// registered its handlers are dropped; see DEVELOPERS.md.)
//
// WAKILI_TEST: {url, ratePerSecond, pairs: [{consultationId, lawyer, client}]}

import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { inputs, note, scenario } from "./lib.mjs";

const ACK_TIMEOUT_MS = 15_000;

scenario("join storm", async () => {
  const env = inputs();
  const seats = env.pairs.flatMap((p) => [
    { consultationId: p.consultationId, token: p.lawyer },
    { consultationId: p.consultationId, token: p.client },
  ]);
  const interval = 1000 / env.ratePerSecond;
  note(`opening ${seats.length} connections at ${env.ratePerSecond}/s`);
  const started = performance.now();
  const sockets = [];
  const results = await Promise.all(
    seats.map(
      (seat, i) =>
        new Promise((resolve) => {
          setTimeout(() => {
            const opened = performance.now();
            const socket = io(env.url, {
              auth: { token: seat.token },
              transports: ["websocket"],
              reconnection: false,
              forceNew: true,
            });
            sockets.push(socket);
            socket.on("connect_error", (e) => resolve({ error: `connect_error ${e.message}` }));
            socket.on("connect", () => {
              socket
                .timeout(ACK_TIMEOUT_MS)
                .emit("consultation:join", { consultationId: seat.consultationId }, (err, ack) => {
                  if (err) {
                    resolve({ lost: true });
                  } else {
                    resolve({ ack, ms: performance.now() - opened });
                  }
                });
            });
          }, i * interval);
        }),
    ),
  );
  const elapsed = (performance.now() - started) / 1000;
  const lost = results.filter((r) => r.lost).length;
  const errors = results.filter((r) => r.error || (r.ack && !r.ack.ok));
  const ms = results.filter((r) => r.ms !== undefined).map((r) => r.ms).sort((a, b) => a - b);
  const pct = (p) => ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))].toFixed(1);
  console.log(
    `${seats.length} joins in ${elapsed.toFixed(2)} s (${(seats.length / elapsed).toFixed(0)}/s), ` +
      `connect+join p50 ${pct(50)} ms p99 ${pct(99)} ms, lost ${lost}, refused ${errors.length}`,
  );
  for (const s of sockets) {
    s.close();
  }
  assert.equal(lost, 0, `${lost} of ${seats.length} joins were never acknowledged`);
  assert.deepEqual(
    errors.slice(0, 3).map((e) => e.error ?? e.ack.error),
    [],
    `${errors.length} joins failed`,
  );
  assert.equal(ms.length, seats.length, "every join answered");
}, { limitMs: 120_000 });
