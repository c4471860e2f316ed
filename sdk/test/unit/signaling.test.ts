import { describe, expect, it } from "vitest";

import { ConnectionRefusedError, SignalingError } from "../../src/errors.js";
import type { JoinAck } from "../../src/protocol.js";
import { SignalingClient } from "../../src/signaling.js";
import { FakeSocket, settle } from "./fake-socket.js";

function joinAck(participantId: string, resumeToken: string, resumed = false): { ok: true } & JoinAck {
  return {
    ok: true,
    participantId,
    resumeToken,
    participants: [],
    recording: { active: false, server: false },
    waiting: false,
    resumed,
    topology: "p2p",
    qualityProfile: "medium",
    mediaMode: "p2p",
  };
}

async function connected(token: string | (() => string) = "jwt-1") {
  const socket = new FakeSocket();
  const client = new SignalingClient({ url: "http://wakili.test", token, connect: socket.factory(), ackTimeoutMs: 50 });
  const opened = client.connect();
  await socket.open();
  await opened;
  return { socket, client };
}

describe("SignalingClient", () => {
  it("sends the token in the CONNECT payload, asking a token function again on every connection", async () => {
    let n = 0;
    const { socket } = await connected(() => `jwt-${++n}`);
    socket.drop();
    await socket.open();
    expect(socket.auths).toEqual([{ token: "jwt-1" }, { token: "jwt-2" }]);
  });

  it("names its consultation in the connection's query, beside the app's own parameters", async () => {
    const socket = new FakeSocket();
    const client = new SignalingClient({
      url: "http://wakili.test",
      token: "jwt",
      consultationId: "c-42",
      socketOptions: { query: { app: "web" }, transports: ["polling"] },
      connect: socket.factory(),
    });
    const opened = client.connect();
    await socket.open();
    await opened;
    expect(socket.options?.query).toEqual({ app: "web", consultation: "c-42" });
    expect(socket.options?.transports).toEqual(["polling"]);
    const { socket: plain } = await connected();
    expect(plain.options?.query).toBeUndefined();
  });

  it("resolves a request with the ack's fields, without `ok`", async () => {
    const { socket, client } = await connected();
    socket.respond = () => ({ ok: true, score: 4.2, level: "high" });
    const report = {
      rttMs: 20,
      jitterMs: 2,
      packetLossPct: 0,
      outboundKbps: 900,
      inboundKbps: 900,
      frameRate: 30,
      width: 1280,
      height: 720,
      candidateType: "host",
    };
    await expect(client.request("quality:report", report)).resolves.toEqual({ score: 4.2, level: "high" });
    expect(socket.sent).toEqual([{ event: "quality:report", payload: report }]);
  });

  it("sends events without a payload as the bare event", async () => {
    const { socket, client } = await connected();
    await client.request("recording:stop");
    expect(socket.sent).toEqual([{ event: "recording:stop", payload: null }]);
  });

  it("rejects a refused request with the server's code and message", async () => {
    const { socket, client } = await connected();
    socket.respond = () => ({ ok: false, error: { code: "waiting", message: "you are in the waiting room" } });
    const error = await client.request("signal", { to: "p2", type: "offer", payload: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SignalingError);
    expect(error).toMatchObject({ code: "waiting", event: "signal" });
    expect((error as Error).message).toContain("waiting room");
  });

  it("rejects with `timeout` when no ack comes", async () => {
    const { socket, client } = await connected();
    socket.respond = () => undefined;
    await expect(client.request("media:state", { audio: true, video: true, screen: false })).rejects.toMatchObject({
      code: "timeout",
    });
  });

  it("rejects requests in flight with `disconnected` when the connection drops", async () => {
    const { socket, client } = await connected();
    socket.respond = () => undefined;
    const pending = client.request("consultation:end");
    socket.drop();
    await expect(pending).rejects.toMatchObject({ code: "disconnected" });
  });

  it("queues requests while reconnecting and resumes with the resume token before sending them", async () => {
    const { socket, client } = await connected();
    socket.respond = (event) => (event === "consultation:join" ? joinAck("p1", "resume-1") : { ok: true });
    await client.join("c1");
    expect(client.resumeToken).toBe("resume-1");

    const states: string[] = [];
    client.lifecycle.on("state", (s) => states.push(s));
    socket.drop();
    expect(client.state).toBe("reconnecting");
    const signal = client.request("signal", { to: "p2", type: "candidate", payload: { n: 1 } });
    const media = client.request("media:state", { audio: false, video: true, screen: false });
    expect(client.queued).toBe(2);

    socket.respond = (event) => (event === "consultation:join" ? joinAck("p1", "resume-2", true) : { ok: true });
    const resumed = client.lifecycle.next("resumed");
    await socket.open();
    await expect(resumed).resolves.toMatchObject({ participantId: "p1", resumed: true });
    await expect(signal).resolves.toEqual({});
    await expect(media).resolves.toEqual({});
    expect(socket.sent.slice(1)).toEqual([
      { event: "consultation:join", payload: { consultationId: "c1", resumeToken: "resume-1" } },
      { event: "signal", payload: { to: "p2", type: "candidate", payload: { n: 1 } } },
      { event: "media:state", payload: { audio: false, video: true, screen: false } },
    ]);
    expect(client.resumeToken).toBe("resume-2");
    expect(states).toEqual(["reconnecting", "connected"]);
  });

  it("holds queued requests while the resume is in flight", async () => {
    const { socket, client } = await connected();
    socket.respond = () => joinAck("p1", "r1");
    await client.join("c1");
    socket.drop();
    let answerJoin: (value: unknown) => void = () => {};
    socket.respond = (event) =>
      event === "consultation:join" ? new Promise((resolve) => (answerJoin = resolve)) : { ok: true };
    await socket.open();
    const late = client.request("participant:admit", { participantId: "p9" });
    await settle();
    expect(socket.events()).toEqual(["consultation:join", "consultation:join"]);
    answerJoin(joinAck("p1", "r2", true));
    await late;
    expect(socket.events()).toEqual(["consultation:join", "consultation:join", "participant:admit"]);
  });

  it("tries the resume again after a timeout, and fails queued requests when the server refuses it", async () => {
    const { socket, client } = await connected();
    socket.respond = () => joinAck("p1", "r1");
    await client.join("c1");
    socket.drop();
    const queued = client.request("media:state", { audio: true, video: true, screen: false });
    let joins = 0;
    socket.respond = (event) => {
      if (event !== "consultation:join") return { ok: true };
      joins += 1;
      return joins === 1 ? undefined : { ok: false, error: { code: "consultation_closed", message: "over" } };
    };
    const failed = client.lifecycle.next("resumeFailed");
    await socket.open();
    await expect(failed).resolves.toMatchObject({ code: "consultation_closed" });
    await expect(queued).rejects.toMatchObject({ code: "consultation_closed" });
    expect(joins).toBe(2);
    expect(client.resumeToken).toBeNull();
  });

  it("does not resume after leaving", async () => {
    const { socket, client } = await connected();
    socket.respond = (event) => (event === "consultation:join" ? joinAck("p1", "r1") : { ok: true });
    await client.join("c1");
    await client.leave();
    socket.drop();
    await socket.open();
    await client.request("media:state", { audio: true, video: true, screen: false });
    expect(socket.events()).toEqual(["consultation:join", "consultation:leave", "media:state"]);
  });

  it("rejects connect() with a ConnectionRefusedError when the server refuses, and fails what was queued", async () => {
    const socket = new FakeSocket();
    const client = new SignalingClient({ url: "http://x", token: "bad", connect: socket.factory() });
    const opened = client.connect();
    const queued = client.request("consultation:join", { consultationId: "c1" });
    socket.refuse("unauthorized");
    const error = await opened.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionRefusedError);
    expect(error).toMatchObject({ code: "unauthorized" });
    await expect(queued).rejects.toMatchObject({ code: "unauthorized" });
    expect(client.state).toBe("closed");
  });

  it("delivers server events to typed listeners and closes on session:closed", async () => {
    const { socket, client } = await connected();
    const joined: string[] = [];
    client.on("participant:joined", (p) => joined.push(`${p.name} (${p.role})`));
    socket.push("participant:joined", {
      participantId: "p2",
      userId: "u2",
      name: "Amina",
      role: "lawyer",
      media: { audio: true, video: true, screen: false },
      waiting: false,
      reconnecting: false,
    });
    expect(joined).toEqual(["Amina (lawyer)"]);
    socket.push("session:closed", { reason: "replaced", message: "joined elsewhere" });
    expect(client.state).toBe("closed");
    await expect(client.request("consultation:leave")).rejects.toMatchObject({ code: "closed" });
  });

  it("uses a refreshed token for later connections", async () => {
    const { socket, client } = await connected("old");
    socket.respond = () => ({ ok: true, expiresAt: "2030-01-01T00:00:00Z" });
    await expect(client.refreshToken("new")).resolves.toEqual({ expiresAt: "2030-01-01T00:00:00Z" });
    socket.drop();
    await socket.open();
    expect(socket.auths).toEqual([{ token: "old" }, { token: "new" }]);
  });
});
