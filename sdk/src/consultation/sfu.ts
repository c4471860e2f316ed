/**
 * Media through the server's SFU (topology `sfu`, docs/signaling.md): one `RTCPeerConnection`
 * to the server for the whole call.
 *
 * Publishing: the microphone, the camera as simulcast layers (`sendEncodings` from
 * `/webrtc/config`: rids q, h, f) and the screen share if any go into one offer, sent once ICE
 * gathering is complete (the server is ICE-lite and takes no trickled candidates) with
 * `media:publish`; its ack carries the answer. Receiving: the server adds an m-line per track
 * others publish and sends `media:offer`; the session answers with `media:answer`. Each received
 * m-line's `a=msid:<participantId> t<trackId>` says whose track it is; a publisher's first video
 * track is its camera, a later one its screen share.
 */

import { MediaError, SignalingError } from "../errors.js";
import type { ApiSchemas } from "../rest.js";
import type { SignalingClient } from "../signaling.js";
import type { WebRtcEnvironment } from "./environment.js";
import { applyProfile, type ProfileLimits } from "./quality.js";
import { iceUfrag, sdpSections } from "./sdp.js";

/** How long to wait for ICE gathering before publishing with the candidates found so far. */
const GATHERING_TIMEOUT_MS = 3000;

/** What one publisher sends through the SFU, as received. */
export interface RemoteMedia {
  /** Its microphone and camera. */
  camera: MediaStream;
  /** Its screen share, if it shares. */
  screen: MediaStream | null;
}

/** What arrives of one received track, from `getStats` (`inbound-rtp`). */
export interface InboundTrack {
  /** The server's id of the track (`a=msid:<participantId> t<trackId>`); 0 peer to peer. */
  trackId: number;
  packetsReceived: number;
  bytesReceived: number;
  /** Video only (0 for audio). */
  framesDecoded: number;
  frameWidth: number;
  frameHeight: number;
  framesPerSecond: number;
  /** The simulcast layer the server forwards (`media:layer`), if it said. */
  rid: string | null;
}

/** What arrives from each other participant, by participant id. */
export type InboundMedia = Record<string, { audio?: InboundTrack; video?: InboundTrack; screen?: InboundTrack }>;

/** Reads one `inbound-rtp` entry. */
export function inboundTrack(s: Record<string, unknown>, trackId: number, rid: string | null): InboundTrack {
  const n = (key: string) => (typeof s[key] === "number" ? s[key] : 0);
  return {
    trackId,
    packetsReceived: n("packetsReceived"),
    bytesReceived: n("bytesReceived"),
    framesDecoded: n("framesDecoded"),
    frameWidth: n("frameWidth"),
    frameHeight: n("frameHeight"),
    framesPerSecond: n("framesPerSecond"),
    rid,
  };
}

/** The tracks to publish. */
export interface PublishTracks {
  audio: MediaStreamTrack | null;
  camera: MediaStreamTrack | null;
  screen: MediaStreamTrack | null;
  stream: MediaStream | null;
}

/** What the session needs. */
export interface SfuSessionOptions {
  /** The signaling connection (`media:publish`, `media:answer`, `media:layer-preference`). */
  signaling: Pick<SignalingClient, "request">;
  /** `/webrtc/config`. */
  config: ApiSchemas["WebrtcConfig"];
  /** The WebRTC classes. */
  rtc: WebRtcEnvironment;
  /** Relay candidates only. */
  forceRelay?: boolean;
  /** The streams received changed. */
  onRemoteChange: () => void;
  /** The connection failed for good (the caller publishes again on a new session). */
  onFailed: () => void;
}

function sameTracks(a: readonly MediaStreamTrack[], b: readonly MediaStreamTrack[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** One participant's media session with the SFU. */
export class SfuSession {
  /** The connection to the server. */
  readonly pc: RTCPeerConnection;
  readonly #options: SfuSessionOptions;
  readonly #remotes = new Map<string, RemoteMedia>();
  /** Whose each received track is (by the browser's track id), and which of theirs. */
  readonly #received = new Map<string, { participantId: string; trackId: number; slot: "audio" | "video" | "screen" }>();
  /** The simulcast layer the server says this side receives, by track id (`media:layer`). */
  readonly layers = new Map<number, string | null>();
  readonly #senders: { audio: RTCRtpSender | null; camera: RTCRtpSender | null; screen: RTCRtpSender | null } = {
    audio: null,
    camera: null,
    screen: null,
  };
  #closed = false;
  #published = false;
  #serverUfrag: string | null = null;
  /** Publishing and answering offers run one at a time, in order. */
  #queue: Promise<void> = Promise.resolve();

  constructor(options: SfuSessionOptions) {
    this.#options = options;
    const { config, rtc } = options;
    this.pc = new rtc.RTCPeerConnection({
      iceServers: config.iceServers as RTCIceServer[],
      iceTransportPolicy: options.forceRelay ? "relay" : config.iceTransportPolicy,
      bundlePolicy: "max-bundle",
    });
    this.pc.ontrack = () => queueMicrotask(() => this.#collectRemotes());
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === "failed" && !this.#closed) {
        options.onFailed();
      }
    };
  }

  /** Whether the session was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** What each publisher sends, by participant id. */
  get remotes(): ReadonlyMap<string, RemoteMedia> {
    return this.#remotes;
  }

  /** What arrives from each publisher now (for diagnostics and quality displays). */
  async inbound(): Promise<InboundMedia> {
    const result: InboundMedia = {};
    const stats = (await this.pc.getStats()) as unknown as Map<string, Record<string, unknown>>;
    stats.forEach((s) => {
      const entry = s.type === "inbound-rtp" ? this.#received.get(String(s.trackIdentifier)) : undefined;
      if (entry) {
        const media = (result[entry.participantId] ??= {});
        media[entry.slot] = inboundTrack(s, entry.trackId, this.layers.get(entry.trackId) ?? null);
      }
    });
    return result;
  }

  /** Publishes the tracks: offer, ICE gathering, `media:publish`, the server's answer. */
  publish(tracks: PublishTracks): Promise<void> {
    return this.#serially(async () => {
      const { config, rtc } = this.#options;
      const streams = [tracks.stream ?? new rtc.MediaStream()];
      if (tracks.audio) {
        this.#senders.audio = this.pc.addTransceiver(tracks.audio, { direction: "sendonly", streams }).sender;
      }
      if (tracks.camera) {
        const layers = config.simulcast.enabled ? config.simulcast.encodings : [];
        const sendEncodings: RTCRtpEncodingParameters[] = layers.length
          ? layers.map((e) => ({
              rid: e.rid,
              scaleResolutionDownBy: e.scaleResolutionDownBy,
              maxBitrate: e.maxBitrate,
              maxFramerate: e.maxFramerate,
            }))
          : [{ maxBitrate: config.qualityProfiles[config.defaultProfile]?.maxBitrate }];
        const transceiver = this.pc.addTransceiver(tracks.camera, { direction: "sendonly", streams, sendEncodings });
        this.#preferCodecs(transceiver);
        this.#senders.camera = transceiver.sender;
      }
      if (tracks.screen) {
        const sendEncodings = [{ maxBitrate: config.screenShare.maxBitrate }];
        const transceiver = this.pc.addTransceiver(tracks.screen, { direction: "sendonly", streams, sendEncodings });
        this.#preferCodecs(transceiver);
        this.#senders.screen = transceiver.sender;
      }
      if (!tracks.audio && !tracks.camera && !tracks.screen) {
        // Nothing to send (an observer, or no devices): a data channel gives the offer its one
        // m-line; the server adds the others' tracks in its own offers.
        this.pc.createDataChannel("wakili");
      }
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await this.#gathered();
      const sdp = this.pc.localDescription?.sdp;
      if (!sdp) {
        throw new MediaError("no_offer", "the connection made no offer");
      }
      const answer = await this.#options.signaling.request("media:publish", { sdp });
      await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      this.#serverUfrag = iceUfrag(answer.sdp);
      this.#published = true;
    });
  }

  /**
   * The server's `media:offer`, answered with `media:answer`. An offer that comes before this
   * session published, or with other ICE credentials, belongs to a session this one replaced and
   * is dropped.
   */
  offer(sdp: string): Promise<void> {
    if (!this.#published || this.#closed) {
      return Promise.resolve();
    }
    return this.#serially(async () => {
      if (this.#closed || iceUfrag(sdp) !== this.#serverUfrag) {
        return;
      }
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      this.#collectRemotes();
      const local = this.pc.localDescription?.sdp;
      if (local) {
        await this.#options.signaling.request("media:answer", { sdp: local }).catch((error: unknown) => {
          if (!(error instanceof SignalingError)) {
            throw error;
          }
          console.warn("wakili: media:answer refused", error);
        });
      }
    });
  }

  /** Swaps a published track in place (a device change). */
  async replaceTrack(kind: "audio" | "camera" | "screen", track: MediaStreamTrack | null): Promise<void> {
    const sender = this.#senders[kind];
    if (sender && track && sender.track !== track) {
      await sender.replaceTrack(track);
    }
  }

  /** Holds the camera to a profile: each simulcast layer keeps its own cap, under the profile's. */
  async applyProfile(profile: ProfileLimits): Promise<void> {
    const layers = new Map(this.#options.config.simulcast.encodings.map((e) => [e.rid, e.maxBitrate] as const));
    await applyProfile(this.#senders.camera, profile, layers);
  }

  /** Closes the connection. */
  close(): void {
    this.#closed = true;
    this.pc.close();
    this.#remotes.clear();
    this.#received.clear();
  }

  #serially(task: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #gathered(): Promise<void> {
    const pc = this.pc;
    if (pc.iceGatheringState === "complete") {
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") {
          done();
        }
      };
      const timer = setTimeout(done, GATHERING_TIMEOUT_MS);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /** Puts the server's video codecs first, in its order. */
  #preferCodecs(transceiver: RTCRtpTransceiver): void {
    const order = this.#options.config.codecs.video;
    const capabilities = this.#options.rtc.senderCapabilities?.("video")?.codecs;
    if (!order.length || !capabilities || !transceiver.setCodecPreferences) {
      return;
    }
    const rank = (codec: RTCRtpCodec) => {
      const i = order.findIndex((mime) => mime.toLowerCase() === codec.mimeType.toLowerCase());
      return i < 0 ? order.length : i;
    };
    try {
      transceiver.setCodecPreferences([...capabilities].sort((a, b) => rank(a) - rank(b)));
    } catch (error) {
      console.warn("wakili: codec preferences refused", error);
    }
  }

  /**
   * Rebuilds the streams by publisher from the m-lines the server sends on. A stream object
   * changes only when its tracks do, so views showing it are left alone otherwise.
   */
  #collectRemotes(): void {
    if (this.#closed) {
      return;
    }
    const byMid = new Map(sdpSections(this.pc.remoteDescription?.sdp).map((s) => [s.mid, s]));
    const found = new Map<string, { track: MediaStreamTrack; trackId: number }[]>();
    for (const transceiver of this.pc.getTransceivers()) {
      const section = byMid.get(transceiver.mid);
      if (
        !section ||
        section.port === 0 ||
        transceiver.currentDirection === "stopped" ||
        !section.streamId ||
        section.trackId === null ||
        !["sendonly", "sendrecv"].includes(section.direction)
      ) {
        continue;
      }
      const list = found.get(section.streamId) ?? [];
      list.push({ track: transceiver.receiver.track, trackId: section.trackId });
      found.set(section.streamId, list);
    }
    const { MediaStream } = this.#options.rtc;
    let changed = false;
    this.#received.clear();
    for (const [participantId, entries] of found) {
      entries.sort((a, b) => a.trackId - b.trackId);
      let videoCount = 0;
      for (const { track, trackId } of entries) {
        const slot = track.kind === "audio" ? "audio" : videoCount++ === 0 ? "video" : "screen";
        this.#received.set(track.id, { participantId, trackId, slot });
      }
      const videos = entries.filter((e) => e.track.kind === "video").map((e) => e.track);
      const audio = entries.filter((e) => e.track.kind === "audio").map((e) => e.track);
      const cameraTracks = [...audio, ...videos.slice(0, 1)];
      const screenTracks = videos.slice(1);
      const old = this.#remotes.get(participantId);
      const camera = old && sameTracks(old.camera.getTracks(), cameraTracks) ? old.camera : new MediaStream(cameraTracks);
      let screen: MediaStream | null = null;
      if (screenTracks.length) {
        screen = old?.screen && sameTracks(old.screen.getTracks(), screenTracks) ? old.screen : new MediaStream(screenTracks);
      }
      changed ||= !old || camera !== old.camera || screen !== old.screen;
      this.#remotes.set(participantId, { camera, screen });
    }
    for (const participantId of [...this.#remotes.keys()]) {
      if (!found.has(participantId)) {
        this.#remotes.delete(participantId);
        changed = true;
      }
    }
    if (changed) {
      this.#options.onRemoteChange();
    }
  }
}
