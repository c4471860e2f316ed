/**
 * Peer-to-peer media (topology `p2p`): one `RTCPeerConnection` per other participant, negotiated
 * with `signal` messages. For each pair the participant with the smaller id makes the offers, so
 * offers never collide. ICE candidates that arrive before their description wait. A connection
 * that fails is restarted (ICE restart by the offerer; the answerer asks for one).
 *
 * `signal {type: "restart"}` payloads: `{fresh: true}` — drop the connection and start a new one
 * (the other side reloaded); `{fresh: false}` — the offerer restarts ICE.
 */

import type { SignalMessage, SignalType } from "../protocol.js";
import type { WebRtcEnvironment } from "./environment.js";
import { applyProfile, type ProfileLimits } from "./quality.js";

/** What the mesh needs from the consultation. */
export interface PeerMeshOptions {
  /** The WebRTC classes. */
  rtc: WebRtcEnvironment;
  /** This participant's id. */
  selfId: () => string;
  /** ICE servers and policy (from `/webrtc/config`). */
  configuration: () => RTCConfiguration;
  /** The tracks to send: the microphone, the camera or the screen share, and their stream. */
  localTracks: () => { audio: MediaStreamTrack | null; video: MediaStreamTrack | null; stream: MediaStream | null };
  /** The profile to hold the video sender to, if any. */
  profile: () => ProfileLimits | null;
  /** Sends a `signal`. */
  sendSignal: (to: string, type: SignalType, payload: unknown) => void;
  /** A participant's stream got a new track. */
  onRemoteStream: (participantId: string, stream: MediaStream) => void;
  /** A connection's state changed. */
  onConnectionState: (participantId: string, state: RTCPeerConnectionState) => void;
  /** An ICE restart was started or asked for. */
  onIceRestart: (participantId: string) => void;
}

/** One connection to another participant. */
export interface Peer {
  /** The other participant. */
  readonly id: string;
  /** The connection. */
  readonly pc: RTCPeerConnection;
  /** What it receives. */
  readonly stream: MediaStream;
  /** Candidates that came before the remote description. */
  pending: RTCIceCandidateInit[];
}

/** Whether this side makes the offers to `other`. */
export function isOfferer(self: string, other: string): boolean {
  return self < other;
}

/** Every p2p connection of one participant. */
export class PeerMesh {
  readonly #options: PeerMeshOptions;
  readonly #peers = new Map<string, Peer>();
  /** Candidates that came before the offer they belong to, by sender. */
  readonly #early = new Map<string, RTCIceCandidateInit[]>();

  constructor(options: PeerMeshOptions) {
    this.#options = options;
  }

  /** The connections, by participant. */
  get peers(): ReadonlyMap<string, Peer> {
    return this.#peers;
  }

  /** The first connected connection (for quality reports), if any. */
  connected(): Peer | null {
    return [...this.#peers.values()].find((p) => p.pc.connectionState === "connected") ?? null;
  }

  /** Starts a connection to `participantId` when this side offers; otherwise waits for its offer. */
  connectTo(participantId: string): void {
    if (participantId === this.#options.selfId() || this.#peers.has(participantId)) {
      return;
    }
    if (isOfferer(this.#options.selfId(), participantId)) {
      const peer = this.#create(participantId);
      this.#addLocalTracks(peer);
    }
  }

  /**
   * After this side came back without its old connections (a reload): asks `participantId` to
   * drop the connection it still holds, and starts a new one.
   */
  reconnectFresh(participantId: string): void {
    this.close(participantId);
    this.#options.sendSignal(participantId, "restart", { fresh: true });
    this.connectTo(participantId);
  }

  /** Handles a received `signal`. */
  async handleSignal({ from, type, payload }: SignalMessage): Promise<void> {
    if (type === "restart") {
      const fresh = (payload as { fresh?: unknown } | null)?.fresh === true;
      if (fresh) {
        this.close(from);
        this.connectTo(from);
      } else {
        const peer = this.#peers.get(from);
        if (peer && isOfferer(this.#options.selfId(), from)) {
          this.#options.onIceRestart(from);
          peer.pc.restartIce();
        }
      }
      return;
    }
    let peer = this.#peers.get(from);
    if (type === "offer") {
      const fresh = !peer;
      peer ??= this.#create(from);
      await peer.pc.setRemoteDescription(payload as RTCSessionDescriptionInit);
      if (fresh) {
        this.#addLocalTracks(peer);
      }
      await peer.pc.setLocalDescription();
      this.#options.sendSignal(from, "answer", peer.pc.localDescription?.toJSON());
      await this.#flushCandidates(peer);
    } else if (type === "answer" && peer) {
      await peer.pc.setRemoteDescription(payload as RTCSessionDescriptionInit);
      await this.#flushCandidates(peer);
    } else if (type === "candidate") {
      const candidate = payload as RTCIceCandidateInit;
      if (!peer) {
        const early = this.#early.get(from) ?? [];
        early.push(candidate);
        this.#early.set(from, early);
      } else if (!peer.pc.remoteDescription) {
        peer.pending.push(candidate);
      } else {
        await peer.pc.addIceCandidate(candidate).catch((e: unknown) => console.warn("wakili: candidate refused", e));
      }
    }
  }

  /** Restarts ICE with `participantId` (the offerer restarts; the answerer asks it to). */
  restartIce(participantId: string): void {
    const peer = this.#peers.get(participantId);
    if (!peer) {
      return;
    }
    this.#options.onIceRestart(participantId);
    if (isOfferer(this.#options.selfId(), participantId)) {
      peer.pc.restartIce();
    } else {
      this.#options.sendSignal(participantId, "restart", { fresh: false });
    }
  }

  /** Swaps the sent track of `kind` on every connection, without renegotiation. */
  async replaceTrack(kind: "audio" | "video", track: MediaStreamTrack | null, maxBitrate?: number): Promise<void> {
    for (const peer of this.#peers.values()) {
      const sender = peer.pc.getTransceivers().find((t) => t.receiver.track.kind === kind)?.sender;
      if (!sender) {
        continue;
      }
      await sender.replaceTrack(track);
      if (maxBitrate && kind === "video") {
        const params = sender.getParameters();
        for (const encoding of params.encodings ?? []) {
          encoding.maxBitrate = maxBitrate;
        }
        await sender.setParameters(params).catch(() => {});
      }
    }
  }

  /** Holds every video sender to `profile`. */
  async applyProfile(profile: ProfileLimits): Promise<void> {
    for (const peer of this.#peers.values()) {
      const sender = peer.pc.getSenders().find((s) => s.track?.kind === "video");
      await applyProfile(sender, profile);
    }
  }

  /** Closes the connection to `participantId`. */
  close(participantId: string): void {
    const peer = this.#peers.get(participantId);
    if (peer) {
      peer.pc.close();
      this.#peers.delete(participantId);
    }
    this.#early.delete(participantId);
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const id of [...this.#peers.keys()]) {
      this.close(id);
    }
    this.#early.clear();
  }

  #create(id: string): Peer {
    const { rtc } = this.#options;
    const pc = new rtc.RTCPeerConnection(this.#options.configuration());
    const peer: Peer = { id, pc, stream: new rtc.MediaStream(), pending: [] };
    this.#peers.set(id, peer);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) {
        this.#options.sendSignal(id, "candidate", candidate.toJSON());
      }
    };
    pc.ontrack = ({ track }) => {
      peer.stream.addTrack(track);
      this.#options.onRemoteStream(id, peer.stream);
    };
    pc.onnegotiationneeded = () => {
      if (!isOfferer(this.#options.selfId(), id) || this.#peers.get(id) !== peer) {
        return;
      }
      pc.setLocalDescription()
        .then(() => this.#options.sendSignal(id, "offer", pc.localDescription?.toJSON()))
        .catch((error: unknown) => console.error("wakili: offer failed", error));
    };
    pc.onconnectionstatechange = () => {
      if (this.#peers.get(id) !== peer) {
        return;
      }
      if (pc.connectionState === "failed") {
        this.restartIce(id);
      }
      this.#options.onConnectionState(id, pc.connectionState);
    };
    return peer;
  }

  #addLocalTracks(peer: Peer): void {
    const { audio, video, stream } = this.#options.localTracks();
    const streams = stream ? [stream] : [];
    if (audio) {
      peer.pc.addTrack(audio, ...streams);
    }
    if (video) {
      const sender = peer.pc.addTrack(video, ...streams);
      const profile = this.#options.profile();
      if (profile) {
        applyProfile(sender, profile).catch(() => {});
      }
    }
  }

  async #flushCandidates(peer: Peer): Promise<void> {
    const early = this.#early.get(peer.id) ?? [];
    this.#early.delete(peer.id);
    for (const candidate of [...early, ...peer.pending]) {
      await peer.pc.addIceCandidate(candidate).catch((e: unknown) => console.warn("wakili: candidate refused", e));
    }
    peer.pending = [];
  }
}
