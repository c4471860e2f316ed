import { beforeEach, describe, expect, it } from "vitest";

import { isOfferer, PeerMesh } from "../../src/consultation/p2p.js";
import type { SignalMessage, SignalType } from "../../src/protocol.js";
import { settle } from "./fake-socket.js";
import { cameraStream, FakePeerConnection, fakeWebRtc } from "./fake-webrtc.js";

interface Side {
  mesh: PeerMesh;
  outbox: SignalMessage[];
  remote: string[];
  restarts: string[];
}

function side(id: string, route: (to: string, message: SignalMessage) => void): Side {
  const stream = cameraStream();
  const s: Side = { mesh: null as unknown as PeerMesh, outbox: [], remote: [], restarts: [] };
  s.mesh = new PeerMesh({
    rtc: fakeWebRtc(),
    selfId: () => id,
    configuration: () => ({ iceServers: [{ urls: "stun:stun.test" }] }),
    localTracks: () => ({
      audio: stream.getAudioTracks()[0] ?? null,
      video: stream.getVideoTracks()[0] ?? null,
      stream,
    }),
    profile: () => ({ height: 360, frameRate: 15, maxBitrate: 300_000 }),
    sendSignal: (to: string, type: SignalType, payload: unknown) => {
      const message = { from: id, type, payload };
      s.outbox.push(message);
      route(to, message);
    },
    onRemoteStream: (participantId) => s.remote.push(participantId),
    onConnectionState: () => {},
    onIceRestart: (participantId) => s.restarts.push(participantId),
  });
  return s;
}

/** Two participants whose signals reach each other. */
function pair() {
  const sides = new Map<string, Side>();
  const route = (to: string, message: SignalMessage) => {
    void sides.get(to)?.mesh.handleSignal(message);
  };
  const a = side("a", route);
  const b = side("b", route);
  sides.set("a", a).set("b", b);
  return { a, b };
}

beforeEach(() => {
  FakePeerConnection.all = [];
});

describe("PeerMesh", () => {
  it("lets the smaller id offer, so offers never collide", () => {
    expect(isOfferer("a", "b")).toBe(true);
    expect(isOfferer("b", "a")).toBe(false);
  });

  it("connects: the offerer offers, the other answers, candidates follow, tracks arrive both ways", async () => {
    const { a, b } = pair();
    b.mesh.connectTo("a"); // not b's turn: it waits for a's offer
    expect(b.mesh.peers.size).toBe(0);
    a.mesh.connectTo("b");
    await settle();
    expect(a.outbox.map((m) => m.type)).toEqual(["offer", "candidate"]);
    expect(b.outbox.map((m) => m.type)).toEqual(["answer", "candidate"]);
    const pcA = a.mesh.peers.get("b")?.pc as unknown as FakePeerConnection;
    const pcB = b.mesh.peers.get("a")?.pc as unknown as FakePeerConnection;
    expect(pcA.remoteDescription?.type).toBe("answer");
    expect(pcB.remoteDescription?.type).toBe("offer");
    expect(pcA.candidates).toEqual([{ candidate: "c-answer" }]);
    expect(pcB.candidates).toEqual([{ candidate: "c-offer" }]);
    expect(a.remote).toContain("b");
    expect(b.remote).toContain("a");
    expect(pcA.configuration.iceServers).toEqual([{ urls: "stun:stun.test" }]);
    // The video sender is held to the profile.
    expect(pcA.senders[1]?.parameters.encodings[0]).toMatchObject({ maxBitrate: 300_000, maxFramerate: 15 });
  });

  it("keeps candidates that come before their offer until it arrives", async () => {
    const b = side("b", () => {});
    await b.mesh.handleSignal({ from: "a", type: "candidate", payload: { candidate: "early" } });
    expect(b.mesh.peers.size).toBe(0);
    await b.mesh.handleSignal({ from: "a", type: "offer", payload: { type: "offer", sdp: "offer 1 tracks=0" } });
    const pc = b.mesh.peers.get("a")?.pc as unknown as FakePeerConnection;
    expect(pc.candidates).toEqual([{ candidate: "early" }]);
  });

  it("restarts ICE on failure: the offerer itself, the answerer by asking", async () => {
    const { a, b } = pair();
    a.mesh.connectTo("b");
    await settle();
    const pcA = a.mesh.peers.get("b")?.pc as unknown as FakePeerConnection;
    const pcB = b.mesh.peers.get("a")?.pc as unknown as FakePeerConnection;
    pcB.setState("failed");
    await settle();
    expect(b.outbox).toContainEqual({ from: "b", type: "restart", payload: { fresh: false } });
    expect(pcA.restarts).toBe(1);
    expect(a.restarts).toEqual(["b"]);
    pcA.setState("failed");
    expect(pcA.restarts).toBe(2);
  });

  it("starts over when the other side lost its connection (a reload)", async () => {
    const { a, b } = pair();
    a.mesh.connectTo("b");
    await settle();
    const old = b.mesh.peers.get("a")?.pc as unknown as FakePeerConnection;
    // b reloaded: it has no connection and asks for a fresh one.
    b.mesh.closeAll();
    b.mesh.reconnectFresh("a");
    await settle();
    expect(old.closed).toBe(true);
    const fresh = a.mesh.peers.get("b")?.pc as unknown as FakePeerConnection;
    expect(fresh.remoteDescription?.type).toBe("answer");
    expect(b.mesh.peers.get("a")?.pc).not.toBe(old);
  });

  it("swaps the sent video track without renegotiating", async () => {
    const { a } = pair();
    a.mesh.connectTo("b");
    await settle();
    const pcA = a.mesh.peers.get("b")?.pc as unknown as FakePeerConnection;
    const screen = cameraStream().getVideoTracks()[0] ?? null;
    await a.mesh.replaceTrack("video", screen, 1_500_000);
    expect(pcA.senders[1]?.track).toBe(screen);
    expect(pcA.senders[1]?.parameters.encodings[0]?.maxBitrate).toBe(1_500_000);
  });
});
