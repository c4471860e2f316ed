/**
 * Just enough of RTCPeerConnection and MediaStream for the negotiation logic: descriptions,
 * negotiationneeded on addTrack, candidates, connection state, restartIce. No media flows.
 */

import type { WebRtcEnvironment } from "../../src/consultation/environment.js";

export class FakeTrack {
  enabled = true;
  stopped = false;
  readonly id = `track-${Math.random().toString(36).slice(2)}`;
  constructor(readonly kind: "audio" | "video") {}
  stop() {
    this.stopped = true;
  }
  getSettings() {
    return { height: 720, width: 1280 };
  }
  addEventListener() {}
}

export class FakeStream {
  readonly #tracks: FakeTrack[];
  constructor(tracks: FakeTrack[] = []) {
    this.#tracks = [...tracks];
  }
  addTrack(track: FakeTrack) {
    this.#tracks.push(track);
  }
  getTracks() {
    return [...this.#tracks];
  }
  getAudioTracks() {
    return this.#tracks.filter((t) => t.kind === "audio");
  }
  getVideoTracks() {
    return this.#tracks.filter((t) => t.kind === "video");
  }
}

class FakeSender {
  parameters: RTCRtpSendParameters = { encodings: [{}] } as RTCRtpSendParameters;
  constructor(public track: FakeTrack | null) {}
  replaceTrack(track: FakeTrack | null) {
    this.track = track;
    return Promise.resolve();
  }
  getParameters() {
    return this.parameters;
  }
  setParameters(p: RTCRtpSendParameters) {
    this.parameters = p;
    return Promise.resolve();
  }
}

interface Description {
  type: string;
  sdp: string;
  toJSON(): { type: string; sdp: string };
}

function description(type: string, sdp: string): Description {
  return { type, sdp, toJSON: () => ({ type, sdp }) };
}

export class FakePeerConnection {
  static all: FakePeerConnection[] = [];
  localDescription: Description | null = null;
  remoteDescription: Description | null = null;
  connectionState: RTCPeerConnectionState = "new";
  readonly senders: FakeSender[] = [];
  readonly candidates: unknown[] = [];
  restarts = 0;
  closed = false;
  onicecandidate: ((e: { candidate: { toJSON(): unknown } | null }) => void) | null = null;
  ontrack: ((e: { track: FakeTrack }) => void) | null = null;
  onnegotiationneeded: (() => void) | null = null;
  onconnectionstatechange: (() => void) | null = null;
  #offers = 0;

  constructor(readonly configuration: RTCConfiguration) {
    FakePeerConnection.all.push(this);
  }

  addTrack(track: FakeTrack) {
    const sender = new FakeSender(track);
    this.senders.push(sender);
    this.#negotiationNeeded();
    return sender;
  }

  getSenders() {
    return this.senders;
  }

  getTransceivers() {
    return this.senders.map((sender) => ({ sender, receiver: { track: { kind: sender.track?.kind } } }));
  }

  setLocalDescription() {
    const type = this.#mustAnswer ? "answer" : "offer";
    this.#mustAnswer = false;
    if (type === "offer") this.#offers += 1;
    this.localDescription = description(type, `${type} ${this.#offers} tracks=${this.senders.length}`);
    // A candidate is found once there is a local description.
    setTimeout(() => this.onicecandidate?.({ candidate: { toJSON: () => ({ candidate: `c-${type}` }) } }));
    return Promise.resolve();
  }

  setRemoteDescription(d: { type: string; sdp: string }) {
    this.remoteDescription = description(d.type, d.sdp);
    this.#mustAnswer = d.type === "offer";
    if (d.type === "answer" || d.type === "offer") {
      // The remote side's tracks arrive.
      const kinds = /tracks=(\d+)/.exec(d.sdp)?.[1] ?? "0";
      for (let i = 0; i < Number(kinds); i++) {
        this.ontrack?.({ track: new FakeTrack(i === 0 ? "audio" : "video") });
      }
    }
    return Promise.resolve();
  }

  addIceCandidate(candidate: unknown) {
    if (!this.remoteDescription) {
      return Promise.reject(new Error("no remote description"));
    }
    this.candidates.push(candidate);
    return Promise.resolve();
  }

  restartIce() {
    this.restarts += 1;
    this.#negotiationNeeded();
  }

  setState(state: RTCPeerConnectionState) {
    this.connectionState = state;
    this.onconnectionstatechange?.();
  }

  getStats() {
    return Promise.resolve(new Map());
  }

  close() {
    this.closed = true;
  }

  #mustAnswer = false;
  #negotiating = false;

  /** Like browsers: one negotiationneeded for changes made in the same task. */
  #negotiationNeeded() {
    if (this.#negotiating) return;
    this.#negotiating = true;
    queueMicrotask(() => {
      this.#negotiating = false;
      this.onnegotiationneeded?.();
    });
  }
}

/** The fake classes as the SDK's WebRTC environment. */
export function fakeWebRtc(): WebRtcEnvironment {
  return {
    RTCPeerConnection: FakePeerConnection as unknown as typeof RTCPeerConnection,
    MediaStream: FakeStream as unknown as typeof MediaStream,
  };
}

/** A camera and microphone stream. */
export function cameraStream(): MediaStream {
  return new FakeStream([new FakeTrack("audio"), new FakeTrack("video")]) as unknown as MediaStream;
}
