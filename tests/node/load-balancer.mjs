// Three nodes behind HAProxy (deploy/haproxy/haproxy.cfg as shipped), sharing PostgreSQL and
// Redis. Phase "call": a client on long-polling only (cookies kept, as a browser does) and a
// lawyer on WebSocket join one consultation through the balancer; they land on different nodes
// (leastconn) and signal both ways in order; /metrics is not reachable through the balancer.
// Prints `RESULT {...}` with the nodes they are on and their resume tokens. Phase "resume": after
// the Rust test started draining the client's node, both come back through the balancer with
// their resume tokens, land on the nodes still in rotation, and are the same participants.
// Phase "affinity": a lawyer and a client naming their consultation in the query (as the SDK
// does) land on one node, the one the balancer hashes the consultation to, and stay there.
//
// WAKILI_TEST_FILE: {phase, lb, nodes: [url…], consultationId, affinityId, tokens: {lawyer,
// client}, previous?}

import { assert, connect, inputs, note, scenario, short } from "./lib.mjs";

const env = inputs();
const id = env.consultationId;
const polling = { transports: ["polling"], withCredentials: true };

/** Socket.IO connections open on each node, read from each node's own /metrics. */
async function connectionsByNode() {
  const counts = [];
  for (const node of env.nodes) {
    const text = await (await fetch(`${node}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("wakili_socketio_connections "));
    counts.push(Number(line?.split(" ")[1] ?? NaN));
  }
  return counts;
}

async function untilConnections(expected) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const counts = await connectionsByNode();
    if (counts.reduce((a, b) => a + b, 0) === expected || Date.now() > deadline) return counts;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function signalsBothWays(lawyer, client, lawyerId, clientId) {
  for (let i = 0; i < 20; i++) {
    await client.ok("signal", { to: lawyerId, type: "candidate", payload: { seq: i } });
    await lawyer.ok("signal", { to: clientId, type: "candidate", payload: { seq: i } });
  }
  const atLawyer = [];
  const atClient = [];
  for (let i = 0; i < 20; i++) {
    atLawyer.push((await lawyer.waitFor("signal")).payload.seq);
    atClient.push((await client.waitFor("signal")).payload.seq);
  }
  assert.deepEqual(atLawyer, [...Array(20).keys()], "client → lawyer in order");
  assert.deepEqual(atClient, [...Array(20).keys()], "lawyer → client in order");
}

if (env.phase === "affinity") {
  scenario("a consultation's participants share a node", async () => {
    // What the SDK sends: the consultation in every Socket.IO request's query.
    const query = { consultation: env.affinityId };
    note("the client (long-polling only) and the lawyer (WebSocket) name their consultation");
    const client = await connect("client@lb", env.lb, env.tokens.client, { ...polling, query });
    const cj = await client.join(env.affinityId);
    const lawyer = await connect("lawyer@lb", env.lb, env.tokens.lawyer, { query });
    const lj = await lawyer.join(env.affinityId);
    await client.waitFor("consultation:admitted");
    const counts = await untilConnections(2);
    note(`Socket.IO connections per node: ${counts.join(", ")}`);
    assert.deepEqual([...counts].sort(), [0, 0, 2], "both on the consultation's node");

    note("signals both ways on that node; the polling session stays on it without a cookie");
    await signalsBothWays(lawyer, client, lj.participantId, cj.participantId);
    assert.deepEqual(await connectionsByNode(), counts, "still on the same node");
    await lawyer.ok("consultation:end");
    await client.waitFor("consultation:ended");
    lawyer.socket.disconnect();
    client.socket.disconnect();
    await untilConnections(0);
  });
} else if (env.phase === "call") {
  scenario("a call through the load balancer", async () => {
    note("the client, on long-polling only, joins through the balancer and waits");
    const client = await connect("client@lb", env.lb, env.tokens.client, polling);
    const cj = await client.join(id);
    assert.equal(cj.waiting, true, short(cj));
    assert.equal(client.socket.io.engine.transport.name, "polling");

    note("the lawyer, on WebSocket, joins through the balancer: the client is admitted");
    const lawyer = await connect("lawyer@lb", env.lb, env.tokens.lawyer);
    const lj = await lawyer.join(id);
    await client.waitFor("consultation:admitted");
    assert.equal(lawyer.socket.io.engine.transport.name, "websocket");

    const counts = await untilConnections(2);
    note(`Socket.IO connections per node: ${counts.join(", ")}`);
    assert.deepEqual([...counts].sort(), [0, 1, 1], "the two are on two different nodes");

    note("signals both ways across the nodes, in order; the polling session stays on its node");
    await signalsBothWays(lawyer, client, lj.participantId, cj.participantId);

    const metrics = await fetch(`${env.lb}/metrics`);
    assert.equal(metrics.status, 404, "the balancer does not expose /metrics");

    // Which node holds the client: drop the lawyer and see whose count falls.
    lawyer.socket.disconnect();
    const after = await untilConnections(1);
    const clientNode = after.indexOf(1);
    const lawyerNode = counts.findIndex((n, i) => n === 1 && i !== clientNode);
    client.socket.disconnect();
    console.log(
      `RESULT ${JSON.stringify({
        clientNode,
        lawyerNode,
        lawyer: { participantId: lj.participantId, resumeToken: lj.resumeToken },
        client: { participantId: cj.participantId, resumeToken: cj.resumeToken },
      })}`,
    );
  });
} else {
  scenario("resuming through the load balancer while a node drains", async () => {
    const before = env.previous;
    note("both come back through the balancer with their resume tokens");
    const client = await connect("client@lb", env.lb, env.tokens.client, polling);
    const lawyer = await connect("lawyer@lb", env.lb, env.tokens.lawyer);
    const cj = await client.join(id, before.client.resumeToken);
    const lj = await lawyer.join(id, before.lawyer.resumeToken);
    assert.equal(cj.participantId, before.client.participantId, "the same client");
    assert.equal(lj.participantId, before.lawyer.participantId, "the same lawyer");
    assert.equal(cj.resumed && lj.resumed, true, `${short(cj)} ${short(lj)}`);
    const counts = await untilConnections(2);
    note(`Socket.IO connections per node: ${counts.join(", ")} (draining: node ${before.clientNode + 1})`);
    assert.equal(counts[before.clientNode], 0, "nobody lands on the draining node");
    await signalsBothWays(lawyer, client, lj.participantId, cj.participantId);
    await lawyer.ok("consultation:end");
    await client.waitFor("consultation:ended");
  });
}
