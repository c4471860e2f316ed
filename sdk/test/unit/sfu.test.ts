import { describe, expect, it } from "vitest";

import { SfuSession } from "../../src/consultation/sfu.js";
import type { ApiSchemas } from "../../src/rest.js";
import { settle } from "./fake-socket.js";
import { webrtcConfig } from "./fake-api.js";
import { cameraStream, FakeStream, FakeTrack } from "./fake-webrtc.js";

/** An RTCPeerConnection toward the SFU: transceivers, offers, answers, gathering done at once. */
class SfuPeerConnection {
  static last: SfuPeerConnection | null = null;
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  iceGatheringState = "complete";
  connectionState = "new";
  readonly transceivers: { mid: string | null; sender: { track: unknown }; receiver: { track: FakeTrack }; currentDirection: string; init?: unknown }[] = [];
  ontrack: (() => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  channels: string[] = [];

  constructor(readonly configuration: RTCConfiguration) {
    SfuPeerConnection.last = this;
  }
  addTransceiver(track: FakeTrack, init: unknown) {
    const t = { mid: String(this.transceivers.length), sender: { track }, receiver: { track: new FakeTrack(track.kind) }, currentDirection: "sendonly", init };
    this.transceivers.push(t);
    return t;
  }
  createDataChannel(label: string) {
    this.channels.push(label);
  }
  getTransceivers() {
    return this.transceivers;
  }
  createOffer() {
    return Promise.resolve({ type: "offer", sdp: `offer m=${this.transceivers.length}` });
  }
  createAnswer() {
    return Promise.resolve({ type: "answer", sdp: "answer" });
  }
  setLocalDescription(d: { type: string; sdp: string }) {
    this.localDescription = d;
    return Promise.resolve();
  }
  setRemoteDescription(d: { type: string; sdp: string }) {
    this.remoteDescription = d;
    // The server's offer adds a receiving m-line per track in it beyond those we have.
    const lines = d.sdp.split("\r\nm=").length - 1;
    while (this.transceivers.length < lines) {
      const kind = /m=(audio|video)/g;
      const kinds = [...d.sdp.matchAll(kind)].map((m) => m[1] as "audio" | "video");
      const i = this.transceivers.length;
      this.transceivers.push({ mid: String(i), sender: { track: null }, receiver: { track: new FakeTrack(kinds[i] ?? "video") }, currentDirection: "recvonly" });
    }
    queueMicrotask(() => this.ontrack?.());
    return Promise.resolve();
  }
  addEventListener() {}
  removeEventListener() {}
  close() {}
}

function serverOffer(ufrag: string, lines: [kind: string, msid: string | null][]) {
  const header = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", `a=ice-ufrag:${ufrag}`].join("\r\n");
  const body = lines.map(([kind, msid], i) =>
    [`m=${kind} 9 UDP/TLS/RTP/SAVPF 96`, `a=mid:${i}`, msid ? "a=sendonly" : "a=recvonly", ...(msid ? [`a=msid:${msid}`] : [])].join("\r\n"),
  );
  return [header, ...body, ""].join("\r\n");
}

function session(answer = serverOffer("srv", [])) {
  const requests: { event: string; payload: unknown }[] = [];
  let changes = 0;
  const config = {
    ...webrtcConfig(),
    simulcast: {
      enabled: true,
      encodings: [
        { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 100_000, maxFramerate: 30 },
        { rid: "f", scaleResolutionDownBy: 1, maxBitrate: 1_000_000, maxFramerate: 30 },
      ],
    },
  } as unknown as ApiSchemas["WebrtcConfig"];
  const s = new SfuSession({
    signaling: {
      request: ((event: string, payload: unknown) => {
        requests.push({ event, payload });
        return Promise.resolve(event === "media:publish" ? { sdp: answer } : {});
      }) as never,
    },
    config,
    rtc: {
      RTCPeerConnection: SfuPeerConnection as unknown as typeof RTCPeerConnection,
      MediaStream: FakeStream as unknown as typeof MediaStream,
    },
    onRemoteChange: () => (changes += 1),
    onFailed: () => {},
  });
  return { s, requests, changes: () => changes };
}

describe("SfuSession", () => {
  it("publishes the camera as simulcast layers and the microphone in one offer", async () => {
    const { s, requests } = session();
    const stream = cameraStream();
    await s.publish({ audio: stream.getAudioTracks()[0] ?? null, camera: stream.getVideoTracks()[0] ?? null, screen: null, stream });
    const pc = SfuPeerConnection.last;
    expect(requests).toEqual([{ event: "media:publish", payload: { sdp: "offer m=2" } }]);
    expect(pc?.remoteDescription?.type).toBe("answer");
    expect(pc?.transceivers[1]?.init).toMatchObject({
      direction: "sendonly",
      sendEncodings: [
        { rid: "q", maxBitrate: 100_000 },
        { rid: "f", maxBitrate: 1_000_000 },
      ],
    });
  });

  it("offers a data channel when there is nothing to send (an observer)", async () => {
    const { s } = session();
    await s.publish({ audio: null, camera: null, screen: null, stream: null });
    expect(SfuPeerConnection.last?.channels).toEqual(["wakili"]);
  });

  it("answers the server's offers and groups the tracks received by publisher: camera, then screen", async () => {
    const { s, requests, changes } = session(serverOffer("srv", []));
    await s.publish({ audio: null, camera: null, screen: null, stream: null });
    await s.offer(
      serverOffer("srv", [
        ["application", null],
        ["audio", "p2 t1"],
        ["video", "p2 t2"],
        ["video", "p2 t5"],
        ["audio", "p3 t3"],
      ]),
    );
    await settle();
    expect(requests.at(-1)).toEqual({ event: "media:answer", payload: { sdp: "answer" } });
    const p2 = s.remotes.get("p2");
    expect(p2?.camera.getTracks().map((t) => t.kind)).toEqual(["audio", "video"]);
    expect(p2?.screen?.getTracks().map((t) => t.kind)).toEqual(["video"]);
    expect(s.remotes.get("p3")?.screen).toBeNull();
    expect(changes()).toBeGreaterThan(0);
  });

  it("drops an offer of a session it replaced (other ICE credentials)", async () => {
    const { s, requests } = session(serverOffer("srv", []));
    await s.publish({ audio: null, camera: null, screen: null, stream: null });
    await s.offer(serverOffer("old-session", [["audio", "p2 t1"]]));
    expect(requests.map((r) => r.event)).toEqual(["media:publish"]);
    expect(s.remotes.size).toBe(0);
  });
});
