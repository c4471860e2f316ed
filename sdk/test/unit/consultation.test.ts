import { beforeEach, describe, expect, it } from "vitest";

import { Consultation } from "../../src/consultation/consultation.js";
import type { Recorder } from "../../src/consultation/recorder.js";
import type { JoinAck, Participant } from "../../src/protocol.js";
import { SignalingClient } from "../../src/signaling.js";
import { FakeApi, webrtcConfig } from "./fake-api.js";
import { FakeSocket, settle } from "./fake-socket.js";
import { cameraStream, FakePeerConnection, FakeStream, FakeTrack, fakeWebRtc } from "./fake-webrtc.js";

function member(participantId: string, role: Participant["role"], waiting = false): Participant {
  return {
    participantId,
    userId: `user-${participantId}`,
    name: participantId,
    role,
    media: { audio: true, video: true, screen: false },
    waiting,
    reconnecting: false,
  };
}

function ack(me: Participant, others: Participant[], extra: Partial<JoinAck> = {}): { ok: true } & JoinAck {
  return {
    ok: true,
    participantId: me.participantId,
    resumeToken: `resume-${me.participantId}`,
    participants: [me, ...others],
    recording: { active: false, server: false },
    waiting: me.waiting,
    resumed: false,
    topology: "p2p",
    qualityProfile: "medium",
    mediaMode: "p2p",
    ...extra,
  };
}

class FakeRecorder implements Recorder {
  state: Recorder["state"] = "inactive";
  readonly mimeType = "video/webm;codecs=vp8,opus";
  ondataavailable: ((event: { data: Blob }) => void) | null = null;
  onstop: (() => void) | null = null;
  start() {
    this.state = "recording";
    this.ondataavailable?.({ data: new Blob(["first"]) });
  }
  stop() {
    this.ondataavailable?.({ data: new Blob(["last"]) });
    this.state = "inactive";
    this.onstop?.();
  }
  pause() {
    this.state = "paused";
  }
  resume() {
    this.state = "recording";
  }
}

function setup(options: { webrtc?: boolean; joinAnswer: () => unknown; recorder?: Recorder }) {
  const socket = new FakeSocket();
  socket.respond = (event) => (event === "consultation:join" ? options.joinAnswer() : { ok: true });
  const api = new FakeApi().route("GET /api/v1/webrtc/config", () => ({ status: 200, body: webrtcConfig() }));
  const signaling = new SignalingClient({ url: "http://wakili.test", token: "jwt", connect: socket.factory(), ackTimeoutMs: 100 });
  const consultation = new Consultation({
    url: "http://wakili.test",
    consultationId: "c1",
    token: "jwt",
    api: api.client(),
    signaling,
    webrtc: options.webrtc ? fakeWebRtc() : null,
    localStream: cameraStream(),
    ...(options.recorder ? { createRecorder: () => options.recorder as Recorder } : {}),
  });
  const join = async () => {
    const joined = consultation.join();
    await settle();
    await socket.open();
    return joined;
  };
  return { socket, api, consultation, join };
}

beforeEach(() => {
  FakePeerConnection.all = [];
});

describe("Consultation", () => {
  it("joins: fetches the media configuration, waits in the waiting room, enters when admitted", async () => {
    const client = member("p2", "client", true);
    const { socket, api, consultation, join } = setup({ joinAnswer: () => ack(client, [member("p9", "admin")]) });
    const statuses: string[] = [];
    consultation.on("state", (s) => statuses.at(-1) !== s.status && statuses.push(s.status));
    const waiting = consultation.next("waiting");
    await join();
    expect(api.requests[0]).toMatchObject({ method: "GET", path: "/api/v1/webrtc/config", search: "?consultationId=c1" });
    expect(api.requests[0]?.headers.get("authorization")).toBe("Bearer jwt");
    expect(socket.sent[0]).toEqual({ event: "consultation:join", payload: { consultationId: "c1" } });
    await expect(waiting).resolves.toEqual({ participantId: "p2" });
    expect(consultation.snapshot).toMatchObject({
      status: "waiting",
      participantId: "p2",
      role: "client",
      profile: "medium",
      resumeToken: "resume-p2",
    });
    expect(consultation.snapshot.participants.map((p) => p.participantId)).toEqual(["p9"]);

    socket.push("consultation:admitted", { participantId: "p2" });
    expect(consultation.snapshot.status).toBe("in_call");
    expect(statuses).toEqual(["joining", "waiting", "in_call"]);
    await settle();
    expect(socket.events()).toContain("media:state");
  });

  it("keeps the room's participants up to date from events", async () => {
    const lawyer = member("p1", "lawyer");
    const { socket, consultation, join } = setup({ joinAnswer: () => ack(lawyer, []) });
    await join();
    const client = member("p2", "client", true);
    socket.push("participant:joined", client);
    expect(consultation.snapshot.participants).toEqual([client]);
    socket.push("participant:admitted", { participantId: "p2" });
    socket.push("participant:media", { participantId: "p2", audio: false, video: true, screen: true });
    socket.push("participant:reconnecting", { participantId: "p2" });
    expect(consultation.snapshot.participants[0]).toMatchObject({
      waiting: false,
      reconnecting: true,
      media: { audio: false, video: true, screen: true },
    });
    socket.push("participant:resumed", { participantId: "p2" });
    expect(consultation.snapshot.participants[0]?.reconnecting).toBe(false);
    const left = consultation.next("participantLeft");
    socket.push("participant:left", { participantId: "p2", reason: "left" });
    await expect(left).resolves.toEqual({ participantId: "p2", reason: "left" });
    expect(consultation.snapshot.participants).toEqual([]);
  });

  it("admits, answers consent and controls recording through typed requests", async () => {
    const { socket, consultation, join } = setup({ joinAnswer: () => ack(member("p1", "lawyer"), []) });
    await join();
    socket.respond = (event) =>
      event === "recording:start" ? { ok: true, recordingId: "r1", active: false, pending: ["p2"] } : { ok: true };
    await consultation.admit("p2");
    await expect(consultation.startRecording()).resolves.toEqual({ recordingId: "r1", active: false, pending: ["p2"] });
    await consultation.consent(true, "r1");
    expect(socket.sent.slice(-3)).toEqual([
      { event: "participant:admit", payload: { participantId: "p2" } },
      { event: "recording:start", payload: null },
      { event: "recording:consent", payload: { granted: true, recordingId: "r1" } },
    ]);
  });

  it("resumes after a dropped connection, sending what was asked meanwhile", async () => {
    const lawyer = member("p1", "lawyer");
    let resumed = false;
    const { socket, consultation, join } = setup({ joinAnswer: () => ack(lawyer, [], { resumed }) });
    await join();
    const reconnecting = consultation.next("reconnecting");
    socket.drop();
    await expect(reconnecting).resolves.toEqual({ reason: "transport close" });
    expect(consultation.snapshot.status).toBe("reconnecting");
    const muted = consultation.setMedia({ audio: false });
    resumed = true;
    const back = consultation.next("resumed");
    await socket.open();
    await expect(back).resolves.toMatchObject({ participantId: "p1", resumed: true });
    await muted;
    expect(consultation.snapshot).toMatchObject({ status: "in_call", resumed: true, media: { audio: false } });
    const afterDrop = socket.sent.slice(socket.sent.findLastIndex((s) => s.event === "consultation:join"));
    expect(afterDrop[0]?.payload).toEqual({ consultationId: "c1", resumeToken: "resume-p1" });
    expect(afterDrop.map((s) => s.event)).toContain("media:state");
  });

  it("applies quality recommendations and reports quality from the connection's stats", async () => {
    const lawyer = member("p1", "lawyer");
    const { socket, consultation, join } = setup({ webrtc: true, joinAnswer: () => ack(lawyer, [member("p2", "client")]) });
    await join();
    await settle();
    const pc = FakePeerConnection.all[0];
    expect(pc).toBeDefined();
    const recommended = consultation.next("recommendation");
    socket.push("quality:recommendation", { profile: "low", reason: "packet loss" });
    await expect(recommended).resolves.toEqual({ profile: "low", reason: "packet loss" });
    expect(consultation.snapshot.profile).toBe("low");
    await settle();
    expect(pc?.senders[1]?.parameters.encodings[0]).toMatchObject({ maxBitrate: 300_000, maxFramerate: 15 });

    pc?.setState("connected");
    socket.respond = (event) => (event === "quality:report" ? { ok: true, score: 4.1, level: "high" } : { ok: true });
    expect(await consultation.reportQuality()).toBeNull(); // the first reading only sets the base
    const sample = await consultation.reportQuality();
    expect(sample).toMatchObject({ score: 4.1, level: "high", packetLossPct: 0 });
    expect(consultation.snapshot.quality).toEqual(sample);
    consultation.close();
  });

  it("tells of ICE restarts, gives each peer's connection, and keeps tracks carried into a new stream", async () => {
    const lawyer = member("p1", "lawyer");
    const { socket, consultation, join } = setup({ webrtc: true, joinAnswer: () => ack(lawyer, [member("p2", "client")]) });
    await join();
    await settle();
    const pc = FakePeerConnection.all[0];
    expect(consultation.peerConnection("p2")).toBe(pc);
    expect(consultation.peerConnection("p3")).toBeNull();
    await expect(consultation.inboundMedia()).resolves.toEqual({ p2: {} });

    // p1 < p2: this side offers, so it restarts when the other side asks.
    const restart = consultation.next("iceRestart");
    socket.push("signal", { from: "p2", type: "restart", payload: { fresh: false } });
    await expect(restart).resolves.toEqual({ participantId: "p2" });
    expect(pc?.restarts).toBe(1);

    const old = cameraStream();
    await consultation.setLocalStream(old);
    const [oldAudio, camera] = old.getTracks() as unknown as FakeTrack[];
    const microphone = new FakeTrack("audio");
    await consultation.setLocalStream(new FakeStream([microphone, camera as FakeTrack]) as unknown as MediaStream);
    expect(oldAudio?.stopped).toBe(true);
    expect(camera?.stopped).toBe(false);
    consultation.close();
  });

  it("ends when the server closes the session, and says why", async () => {
    const { socket, consultation, join } = setup({ joinAnswer: () => ack(member("p2", "client"), []) });
    await join();
    const ended = consultation.next("ended");
    socket.push("session:closed", { reason: "replaced", message: "joined from another tab" });
    await expect(ended).resolves.toEqual({ reason: "replaced", message: "joined from another tab" });
    expect(consultation.snapshot).toMatchObject({ status: "ended", resumeToken: null });
  });

  it("moves its media to the SFU when the topology changes", async () => {
    const { socket, consultation, join } = setup({
      webrtc: true,
      joinAnswer: () => ack(member("p1", "lawyer"), [member("p2", "client")]),
    });
    await join();
    await settle();
    const p2p = FakePeerConnection.all[0];
    const topology = consultation.next("topology");
    socket.respond = () => undefined; // media:publish stays unanswered here
    socket.push("media:topology", { topology: "sfu" });
    await expect(topology).resolves.toBe("sfu");
    expect(p2p?.closed).toBe(true);
    expect(consultation.snapshot.topology).toBe("sfu");
    consultation.close();
  });

  it("records a p2p call from the lawyer's side: uploads while recording, completes when it stops", async () => {
    const recorder = new FakeRecorder();
    const { socket, api, consultation, join } = setup({
      webrtc: true,
      recorder,
      joinAnswer: () => ack(member("p1", "lawyer"), [member("p2", "client")]),
    });
    api
      .route("POST /api/v1/consultations/c1/recordings", () => ({ status: 201, body: { recordingId: "rec-9" } }))
      .route("PUT /api/v1/recordings/rec-9/chunks/*", () => ({ status: 201, body: {} }))
      .route("POST /api/v1/recordings/rec-9/complete", () => ({ status: 200, body: { id: "rec-9", status: "completed" } }));
    await join();
    socket.push("recording:state", { active: true, recordingId: "r-1", by: "p1", server: false });
    await settle();
    expect(recorder.state).toBe("recording");
    const completed = consultation.next("recordingCompleted");
    socket.push("recording:state", { active: false, recordingId: "r-1", reason: "stopped", server: false });
    await expect(completed).resolves.toMatchObject({ id: "rec-9", status: "completed" });
    expect(api.requests.filter((r) => r.method === "PUT").map((r) => r.path)).toEqual([
      "/api/v1/recordings/rec-9/chunks/0",
      "/api/v1/recordings/rec-9/chunks/1",
    ]);
    expect(consultation.snapshot.recording).toMatchObject({ active: false });
    consultation.close();
  });

  it("leaves recording to the server when it records (through the SFU)", async () => {
    const recorder = new FakeRecorder();
    const { socket, api, join } = setup({
      webrtc: true,
      recorder,
      joinAnswer: () => ack(member("p1", "lawyer"), []),
    });
    await join();
    socket.push("recording:state", { active: true, recordingId: "r-2", by: "p1", server: true });
    await settle();
    expect(recorder.state).toBe("inactive");
    expect(api.requests.filter((r) => r.path.includes("recordings"))).toEqual([]);
  });
});
