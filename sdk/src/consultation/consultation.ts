/**
 * A consultation as a participant lives it: join (or resume), the waiting room, the call's media
 * peer to peer or through the SFU, quality reports and recommendations, consent-gated recording
 * (uploaded from the lawyer's side in p2p calls), the end. The UI listens to typed events and
 * reads `snapshot`; it calls methods for what the user does.
 *
 * Without WebRTC (Node: tests, bots) it runs signaling only: join, admit, media state, recording
 * control all work, and no connection is made.
 */

import { Emitter } from "../emitter.js";
import { SignalingError, type WakiliError } from "../errors.js";
import type {
  AckFields,
  JoinAck,
  MediaMode,
  MediaState,
  Participant,
  ParticipantRole,
  QualityAck,
  QualityReport,
  Recommendation,
  RecordingState,
  ServerEventMap,
  Topology,
} from "../protocol.js";
import { type ApiClient, type ApiSchemas, createApiClient, expectData, type TokenSource } from "../rest.js";
import { SignalingClient, type SignalingOptions } from "../signaling.js";
import { type Clock, platformWebRtc, systemClock, type WebRtcEnvironment } from "./environment.js";
import { PeerMesh } from "./p2p.js";
import { type ProfileLimits, readStats, type StatsReading, type StatsSource } from "./quality.js";
import { type RecorderFactory, RecordingUploader, type UploadProgress } from "./recorder.js";
import { type InboundMedia, inboundTrack, SfuSession } from "./sfu.js";

/** Where the consultation is. */
export type ConsultationStatus = "idle" | "joining" | "waiting" | "in_call" | "reconnecting" | "ended";

/** Why the consultation ended for this participant. */
export type EndReason = "left" | "ended" | "replaced" | "dismissed" | "token_expired" | "rate_limited" | "closed" | "refused";

/** The last quality report and the server's score of it. */
export type QualitySample = QualityReport & QualityAck;

/** What the UI shows, as one immutable value (a new object after every change). */
export interface ConsultationSnapshot {
  status: ConsultationStatus;
  consultationId: string;
  /** This participant, once joined. */
  participantId: string | null;
  /** This participant's part in the consultation. */
  role: ParticipantRole | null;
  /** Everyone else in the room (waiting ones included, flagged). */
  participants: readonly Participant[];
  topology: Topology;
  mediaMode: MediaMode | null;
  /** The quality profile in force. */
  profile: string | null;
  /** What this side sends. */
  media: MediaState;
  recording: RecordingState;
  /** Who speaks (through the SFU). */
  activeSpeaker: string | null;
  quality: QualitySample | null;
  /** Give this back (`resumeToken` option) after a reload to resume the same participant. */
  resumeToken: string | null;
  /** Whether the last join was a resume. */
  resumed: boolean;
  ended: { reason: EndReason; message: string } | null;
}

/** Remote media of one participant. */
export interface RemoteStreams {
  participantId: string;
  /** Microphone and camera. */
  camera: MediaStream | null;
  /** Screen share (through the SFU a track of its own; peer to peer it replaces the camera). */
  screen: MediaStream | null;
}

/** The events a consultation emits. */
export interface ConsultationEvents {
  /** Anything in `snapshot` changed. */
  state: ConsultationSnapshot;
  /** Joined (or resumed): the room as found. */
  joined: JoinAck;
  /** This participant waits to be admitted. */
  waiting: { participantId: string };
  /** This participant was admitted from the waiting room. */
  admitted: { participantId: string };
  participantJoined: Participant;
  participantLeft: ServerEventMap["participant:left"];
  /** Media state, waiting or reconnecting flags of someone changed. */
  participantUpdated: Participant;
  /** Someone's received media changed. */
  remoteStreams: RemoteStreams;
  /** A peer-to-peer connection restarts ICE (it failed, or the other side asked). */
  iceRestart: { participantId: string };
  topology: Topology;
  quality: QualitySample;
  /** The server recommends another profile (applied already). */
  recommendation: Recommendation;
  /** Ask the user, then call `consent(granted)`. */
  consentRequested: ServerEventMap["recording:consent-request"];
  consentRefused: ServerEventMap["recording:consent-refused"];
  consentNeeded: ServerEventMap["recording:consent-needed"];
  recording: RecordingState;
  /** The browser upload of a p2p recording progressed. */
  recordingProgress: UploadProgress;
  /** The recording the browser uploaded was completed. */
  recordingCompleted: ApiSchemas["RecordingView"];
  /** The signaling connection dropped; it is being resumed. */
  reconnecting: { reason: string };
  /** Back after a drop (`resumed: false`: the grace period was over, a fresh participant). */
  resumed: JoinAck;
  /** The token expires soon; give `refreshToken` a new one (done by itself with `renewToken`). */
  tokenExpiring: ServerEventMap["auth:expiring"];
  /** The callee answered a push call notification. */
  callAnswered: ServerEventMap["call:accepted"] & { accepted: boolean };
  ended: { reason: EndReason; message: string };
  /** Something failed that no call awaits (media negotiation, an upload, a refused send). */
  error: WakiliError | Error;
}

/** How to take part. */
export interface ConsultationOptions {
  /** The server's origin. */
  url: string;
  consultationId: string;
  /** The platform's JWT (a function is asked before each use). */
  token: TokenSource;
  /** Asked for a new token when the current one is about to expire. */
  renewToken?: () => Promise<string | null>;
  /** A resume token kept from before a reload. */
  resumeToken?: string | null;
  /** The camera and microphone (from getUserMedia), if any. */
  localStream?: MediaStream | null;
  /** WebRTC classes; the platform's by default; `null`: signaling only. */
  webrtc?: WebRtcEnvironment | null;
  /** Relay candidates only (through TURN). */
  forceRelay?: boolean;
  /** How often to send quality reports (default 5 s). */
  qualityReportIntervalMs?: number;
  /** MediaRecorder timeslice of a browser recording (default 2 s). */
  recordingChunkSeconds?: number;
  /** Makes the MediaRecorder of a browser recording. */
  createRecorder?: RecorderFactory;
  /** socket.io-client options (transports, reconnection delays). */
  socketOptions?: SignalingOptions["socketOptions"];
  /** How long to wait for acknowledgements. */
  ackTimeoutMs?: number;
  /** The REST client to use (one is made otherwise). */
  api?: ApiClient;
  /** The signaling client to use (one is made otherwise). */
  signaling?: SignalingClient;
  clock?: Clock;
}

const NO_RECORDING: RecordingState = { active: false, server: false };

/** One participant's consultation. */
export class Consultation extends Emitter<ConsultationEvents> {
  /** The typed REST client this consultation uses. */
  readonly api: ApiClient;
  /** The signaling connection. */
  readonly signaling: SignalingClient;
  readonly #options: ConsultationOptions;
  readonly #rtc: WebRtcEnvironment | null;
  readonly #clock: Clock;
  #token: TokenSource;
  #snapshot: ConsultationSnapshot;
  readonly #participants = new Map<string, Participant>();
  #config: ApiSchemas["WebrtcConfig"] | null = null;
  #local: MediaStream | null;
  #screen: MediaStream | null = null;
  readonly #mesh: PeerMesh | null;
  #sfu: SfuSession | null = null;
  #stats: { pc: RTCPeerConnection; reading: StatsReading } | null = null;
  #qualityTimer: ReturnType<typeof setInterval> | null = null;
  #uploader: RecordingUploader | null = null;
  readonly #offs: (() => void)[] = [];

  constructor(options: ConsultationOptions) {
    super();
    this.#options = options;
    this.#token = options.token;
    this.#clock = options.clock ?? systemClock;
    this.#rtc = options.webrtc === undefined ? platformWebRtc() : options.webrtc;
    this.#local = options.localStream ?? null;
    const token = () => (typeof this.#token === "function" ? this.#token() : this.#token);
    this.api = options.api ?? createApiClient({ baseUrl: options.url, token });
    this.signaling =
      options.signaling ??
      new SignalingClient({
        url: options.url,
        token,
        consultationId: options.consultationId,
        ...(options.ackTimeoutMs ? { ackTimeoutMs: options.ackTimeoutMs } : {}),
        ...(options.socketOptions ? { socketOptions: options.socketOptions } : {}),
      });
    const audio = Boolean(this.#local?.getAudioTracks()[0]?.enabled ?? this.#local?.getAudioTracks().length);
    const video = Boolean(this.#local?.getVideoTracks()[0]?.enabled ?? this.#local?.getVideoTracks().length);
    this.#snapshot = {
      status: "idle",
      consultationId: options.consultationId,
      participantId: null,
      role: null,
      participants: [],
      topology: "p2p",
      mediaMode: null,
      profile: null,
      media: { audio, video, screen: false },
      recording: NO_RECORDING,
      activeSpeaker: null,
      quality: null,
      resumeToken: options.resumeToken ?? null,
      resumed: false,
      ended: null,
    };
    this.#mesh = this.#rtc ? this.#makeMesh(this.#rtc) : null;
    this.#listen();
  }

  /** What the UI shows now. */
  get snapshot(): ConsultationSnapshot {
    return this.#snapshot;
  }

  /** `/webrtc/config` as fetched at join. */
  get config(): ApiSchemas["WebrtcConfig"] | null {
    return this.#config;
  }

  /** What is received from `participantId`. */
  remoteStreams(participantId: string): RemoteStreams {
    if (this.#snapshot.topology === "sfu") {
      const remote = this.#sfu?.remotes.get(participantId);
      return { participantId, camera: remote?.camera ?? null, screen: remote?.screen ?? null };
    }
    return { participantId, camera: this.#mesh?.peers.get(participantId)?.stream ?? null, screen: null };
  }

  /**
   * Fetches the media configuration, connects and joins (resuming with `resumeToken` when given).
   * Resolves with the join's answer; the consultation is then `waiting` or `in_call`.
   */
  async join(): Promise<JoinAck> {
    if (this.#snapshot.status !== "idle") {
      throw new Error(`join() in status ${this.#snapshot.status}`);
    }
    this.#update({ status: "joining" });
    const id = this.#options.consultationId;
    this.#config = await expectData(
      this.api.GET("/api/v1/webrtc/config", { params: { query: { consultationId: id } } }),
      "GET /api/v1/webrtc/config",
    );
    if (this.signaling.state === "idle") {
      await this.signaling.connect();
    }
    const resumeToken = this.#options.resumeToken ?? null;
    let ack: JoinAck;
    try {
      ack = await this.signaling.join(id, resumeToken);
    } catch (error) {
      this.#update({ status: "idle" });
      throw error;
    }
    this.#applyJoin(ack, Boolean(resumeToken));
    this.emit("joined", ack);
    return ack;
  }

  /** Lets a waiting participant in (lawyer or admin). */
  async admit(participantId: string): Promise<void> {
    await this.signaling.request("participant:admit", { participantId });
  }

  /** Turns the microphone or the camera on or off (the tracks stay; they are disabled). */
  async setMedia(change: Partial<Pick<MediaState, "audio" | "video">>): Promise<void> {
    const media = { ...this.#snapshot.media, ...change };
    this.#local?.getAudioTracks().forEach((t) => (t.enabled = media.audio));
    this.#local?.getVideoTracks().forEach((t) => (t.enabled = media.video));
    this.#update({ media });
    await this.#sendMediaState();
  }

  /** Uses another camera or microphone stream (a device change), without renegotiation. */
  async setLocalStream(stream: MediaStream): Promise<void> {
    const old = this.#local;
    this.#local = stream;
    const { audio, video } = this.#snapshot.media;
    stream.getAudioTracks().forEach((t) => (t.enabled = audio));
    stream.getVideoTracks().forEach((t) => (t.enabled = video));
    const audioTrack = stream.getAudioTracks()[0] ?? null;
    const videoTrack = stream.getVideoTracks()[0] ?? null;
    await this.#mesh?.replaceTrack("audio", audioTrack);
    if (!this.#screen) {
      await this.#mesh?.replaceTrack("video", videoTrack);
    }
    await this.#sfu?.replaceTrack("audio", audioTrack);
    await this.#sfu?.replaceTrack("camera", videoTrack);
    if (old && old !== stream) {
      // Tracks carried over into the new stream (a new microphone, the same camera) keep running.
      const kept = new Set(stream.getTracks());
      old.getTracks().forEach((t) => kept.has(t) || t.stop());
    }
  }

  /**
   * Shares a screen (a `getDisplayMedia` stream), or stops sharing with `null`. Peer to peer the
   * share replaces the camera; through the SFU it is a track of its own (published again).
   */
  async shareScreen(screen: MediaStream | null): Promise<void> {
    const config = this.#config;
    if (screen) {
      const track = screen.getVideoTracks()[0];
      if (!track) {
        return;
      }
      track.contentHint = config?.screenShare.contentHint ?? "detail";
      track.addEventListener("ended", () => void this.shareScreen(null));
      this.#screen = screen;
      if (this.#sfu) {
        await this.#restartSfu();
      }
      await this.#mesh?.replaceTrack("video", track, config?.screenShare.maxBitrate);
    } else {
      if (!this.#screen) {
        return;
      }
      this.#screen.getTracks().forEach((t) => t.stop());
      this.#screen = null;
      if (this.#sfu) {
        await this.#restartSfu();
      }
      const camera = this.#local?.getVideoTracks()[0] ?? null;
      await this.#mesh?.replaceTrack("video", camera, this.#profileLimits()?.maxBitrate);
    }
    this.#update({ media: { ...this.#snapshot.media, screen: Boolean(screen) } });
    await this.#sendMediaState();
  }

  /** Asks everyone's consent to record (the lawyer). */
  startRecording(): Promise<AckFields<"recording:start">> {
    return this.signaling.request("recording:start");
  }

  /** Stops the recording (the lawyer). */
  async stopRecording(): Promise<void> {
    await this.signaling.request("recording:stop");
  }

  /** Answers a `consentRequested`. */
  async consent(granted: boolean, recordingId?: string): Promise<void> {
    await this.signaling.request("recording:consent", { granted, ...(recordingId ? { recordingId } : {}) });
  }

  /** Asks the SFU for one simulcast layer (`q`, `h`, `f`) of every video received; `null`: its choice. */
  async setLayerPreference(rid: "q" | "h" | "f" | null): Promise<void> {
    await this.signaling.request("media:layer-preference", { rid });
  }

  /**
   * Restarts ICE on every connection (after a network change, say): peer to peer each pair's
   * offerer restarts; through the SFU the session is published again.
   */
  async restartIce(): Promise<void> {
    if (this.#snapshot.topology === "sfu") {
      if (this.#sfu) {
        await this.#restartSfu();
      }
      return;
    }
    for (const participantId of this.#mesh?.peers.keys() ?? []) {
      this.#mesh?.restartIce(participantId);
    }
  }

  /** The media connections now: one per peer, or the one to the SFU (for diagnostics and stats). */
  connections(): RTCPeerConnection[] {
    if (this.#snapshot.topology === "sfu") {
      return this.#sfu ? [this.#sfu.pc] : [];
    }
    return [...(this.#mesh?.peers.values() ?? [])].map((p) => p.pc);
  }

  /** The peer-to-peer connection with `participantId`, if there is one. */
  peerConnection(participantId: string): RTCPeerConnection | null {
    return this.#mesh?.peers.get(participantId)?.pc ?? null;
  }

  /**
   * What arrives from each other participant now, from `getStats`: packets, bytes, frames, frame
   * size and, through the SFU, the simulcast layer forwarded.
   */
  async inboundMedia(): Promise<InboundMedia> {
    if (this.#snapshot.topology === "sfu") {
      return (await this.#sfu?.inbound()) ?? {};
    }
    const result: InboundMedia = {};
    for (const peer of this.#mesh?.peers.values() ?? []) {
      const media: InboundMedia[string] = {};
      const stats = (await peer.pc.getStats()) as unknown as Map<string, Record<string, unknown>>;
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && (s.kind === "audio" || s.kind === "video")) {
          media[s.kind] = inboundTrack(s, 0, null);
        }
      });
      result[peer.id] = media;
    }
    return result;
  }

  /** Gives the server a new token (same user and role); used for REST and reconnections too. */
  async refreshToken(token: string): Promise<void> {
    if (this.signaling.state === "connected") {
      await this.signaling.refreshToken(token);
    }
    this.#token = token;
  }

  /** Ends the consultation for everyone (the lawyer or an admin). */
  async end(): Promise<void> {
    await this.signaling.request("consultation:end");
  }

  /** Leaves the call (a browser recording is completed first). */
  async leave(): Promise<void> {
    if (this.#snapshot.status === "ended") {
      return;
    }
    await this.signaling.leave().catch(() => {});
    await this.#finish("left", "You left the consultation.");
  }

  /** Reads the current connection's stats and sends a quality report; resolves with the score. */
  async reportQuality(): Promise<QualitySample | null> {
    const pc = this.#snapshot.topology === "sfu" ? this.#sfu?.pc : this.#mesh?.connected()?.pc;
    if (!pc || pc.connectionState !== "connected" || this.signaling.state !== "connected") {
      return null;
    }
    const stats = (await pc.getStats()) as unknown as StatsSource;
    const previous = this.#stats?.pc === pc ? this.#stats.reading : null;
    const reading = readStats(stats, previous, this.#clock.now());
    this.#stats = { pc, reading };
    if (!previous) {
      return null; // rates need two readings
    }
    return this.sendQualityReport(reading.report);
  }

  /** Sends a quality report as is (what `reportQuality` does with its stats). */
  async sendQualityReport(report: QualityReport): Promise<QualitySample> {
    const ack = await this.signaling.request("quality:report", report);
    const sample = { ...report, ...ack };
    this.#update({ quality: sample });
    this.emit("quality", sample);
    return sample;
  }

  /** Closes everything without leaving (a page unload: the server keeps the place for a resume). */
  close(): void {
    this.#teardown();
    this.signaling.close();
  }

  // ---------------------------------------------------------------- signaling events

  #listen(): void {
    const s = this.signaling;
    const on = <E extends keyof ServerEventMap>(event: E, handler: (payload: ServerEventMap[E]) => void) =>
      this.#offs.push(s.on(event, handler));
    on("participant:joined", (p) => {
      this.#participants.set(p.participantId, p);
      this.#publishParticipants();
      this.emit("participantJoined", p);
      if (!p.waiting && this.#inCall() && this.#snapshot.topology === "p2p") {
        this.#mesh?.connectTo(p.participantId);
      }
    });
    on("participant:admitted", ({ participantId }) => {
      this.#patchParticipant(participantId, { waiting: false });
      if (this.#inCall() && this.#snapshot.topology === "p2p") {
        this.#mesh?.connectTo(participantId);
      }
    });
    on("consultation:admitted", ({ participantId }) => {
      this.#update({ status: "in_call" });
      this.emit("admitted", { participantId });
      this.#enterCall();
    });
    on("participant:left", (left) => {
      this.#participants.delete(left.participantId);
      this.#mesh?.close(left.participantId);
      this.#publishParticipants();
      this.emit("participantLeft", left);
    });
    on("participant:reconnecting", ({ participantId }) => this.#patchParticipant(participantId, { reconnecting: true }));
    on("participant:resumed", ({ participantId }) => this.#patchParticipant(participantId, { reconnecting: false }));
    on("participant:media", ({ participantId, audio, video, screen }) =>
      this.#patchParticipant(participantId, { media: { audio, video, screen } }),
    );
    on("signal", (message) => {
      if (this.#snapshot.topology === "p2p") {
        this.#mesh?.handleSignal(message).catch((error: unknown) => this.#fail(error));
      }
    });
    on("media:topology", ({ topology }) => this.#useTopology(topology));
    on("media:offer", ({ sdp }) => {
      this.#sfu?.offer(sdp).catch((error: unknown) => this.#fail(error));
    });
    on("media:layer", ({ trackId, rid }) => this.#sfu?.layers.set(trackId, rid ?? null));
    on("speaker:active", ({ participantId }) => this.#update({ activeSpeaker: participantId }));
    on("quality:recommendation", (r) => this.#applyRecommendation(r));
    on("quality-profile:changed", ({ profile }) => this.#applyRecommendation({ profile, reason: "changed by the lawyer" }));
    on("recording:consent-request", (r) => this.emit("consentRequested", r));
    on("recording:consent-refused", (r) => this.emit("consentRefused", r));
    on("recording:consent-needed", (r) => this.emit("consentNeeded", r));
    on("recording:state", (r) => void this.#onRecordingState(r));
    on("consultation:ended", () => void this.#finish("ended", "The consultation was ended."));
    on("session:closed", ({ reason, message }) => void this.#finish(reason, message));
    on("call:accepted", (c) => this.emit("callAnswered", { ...c, accepted: true }));
    on("call:declined", (c) => this.emit("callAnswered", { ...c, accepted: false }));
    on("auth:expiring", (notice) => {
      this.emit("tokenExpiring", notice);
      const renew = this.#options.renewToken;
      if (renew) {
        renew()
          .then((token) => (token ? this.refreshToken(token) : undefined))
          .catch((error: unknown) => this.#fail(error));
      }
    });
    const life = s.lifecycle;
    this.#offs.push(
      life.on("disconnected", ({ reason, willReconnect }) => {
        if (willReconnect && this.#snapshot.status !== "ended" && this.#snapshot.participantId) {
          this.#update({ status: "reconnecting" });
          this.emit("reconnecting", { reason });
        }
      }),
      life.on("resumed", (ack) => {
        this.#applyJoin(ack, false);
        this.emit("resumed", ack);
      }),
      life.on("resumeFailed", (error) => {
        void this.#finish(error.code === "consultation_closed" ? "ended" : "closed", error.message);
      }),
      life.on("refused", (error) => void this.#finish("refused", error.message)),
      life.on("error", (error) => this.emit("error", error)),
    );
  }

  // ---------------------------------------------------------------- joining

  /** Takes in a join's (or resume's) answer. `reloaded`: this side lost its connections. */
  #applyJoin(ack: JoinAck, reloaded: boolean): void {
    const fresh = ack.participantId !== this.#snapshot.participantId;
    if (fresh && this.#snapshot.participantId) {
      // Not resumed (the grace period was over): the old connections belong to another participant.
      this.#mesh?.closeAll();
    }
    this.#participants.clear();
    let role: ParticipantRole | null = null;
    for (const p of ack.participants) {
      if (p.participantId === ack.participantId) {
        role = p.role;
      } else {
        this.#participants.set(p.participantId, p);
      }
    }
    this.#update({
      status: ack.waiting ? "waiting" : "in_call",
      participantId: ack.participantId,
      role,
      participants: [...this.#participants.values()],
      mediaMode: ack.mediaMode,
      resumeToken: ack.resumeToken,
      resumed: ack.resumed,
      recording: { ...ack.recording },
    });
    if (role === "observer") {
      this.#update({ media: { audio: false, video: false, screen: false } });
    }
    if (ack.qualityProfile !== this.#snapshot.profile) {
      this.#applyRecommendation({ profile: ack.qualityProfile, reason: "the consultation's profile" }, false);
    }
    this.#useTopology(ack.topology);
    if (ack.waiting) {
      this.emit("waiting", { participantId: ack.participantId });
      return;
    }
    this.#enterCall(reloaded && ack.resumed);
  }

  #enterCall(reloaded = false): void {
    this.#startQualityReports();
    void this.#sendMediaState();
    if (this.#snapshot.topology === "sfu") {
      void this.#startSfu();
      return;
    }
    for (const p of this.#participants.values()) {
      if (p.waiting) {
        continue;
      }
      if (reloaded && !this.#mesh?.peers.has(p.participantId)) {
        // The other side still holds the connection this side lost in the reload.
        this.#mesh?.reconnectFresh(p.participantId);
      } else {
        this.#mesh?.connectTo(p.participantId);
      }
    }
  }

  /** Observers only receive: no tracks are sent, whatever stream the app gave. */
  #listensOnly(): boolean {
    return this.#snapshot.role === "observer";
  }

  #inCall(): boolean {
    return this.#snapshot.status === "in_call";
  }

  // ---------------------------------------------------------------- media

  #makeMesh(rtc: WebRtcEnvironment): PeerMesh {
    return new PeerMesh({
      rtc,
      selfId: () => this.#snapshot.participantId ?? "",
      configuration: () => ({
        iceServers: (this.#config?.iceServers ?? []) as RTCIceServer[],
        iceTransportPolicy: this.#options.forceRelay ? "relay" : (this.#config?.iceTransportPolicy ?? "all"),
      }),
      localTracks: () =>
        this.#listensOnly()
          ? { audio: null, video: null, stream: null }
          : {
              audio: this.#local?.getAudioTracks()[0] ?? null,
              video: this.#screen?.getVideoTracks()[0] ?? this.#local?.getVideoTracks()[0] ?? null,
              stream: this.#local,
            },
      profile: () => this.#profileLimits(),
      sendSignal: (to, type, payload) => this.signaling.send("signal", { to, type, payload }),
      onRemoteStream: (participantId) => this.emit("remoteStreams", this.remoteStreams(participantId)),
      onConnectionState: () => this.#update({}),
      onIceRestart: (participantId) => this.emit("iceRestart", { participantId }),
    });
  }

  #useTopology(topology: Topology): void {
    if (topology === this.#snapshot.topology) {
      return;
    }
    this.#update({ topology });
    this.emit("topology", topology);
    if (topology === "sfu") {
      this.#mesh?.closeAll();
      if (this.#inCall()) {
        void this.#startSfu();
      }
    } else {
      this.#stopSfu();
      if (this.#inCall()) {
        for (const p of this.#participants.values()) {
          if (!p.waiting) {
            this.#mesh?.connectTo(p.participantId);
          }
        }
      }
    }
  }

  async #startSfu(): Promise<void> {
    const rtc = this.#rtc;
    const config = this.#config;
    if (!rtc || !config || (this.#sfu && !this.#sfu.closed)) {
      return;
    }
    const session: SfuSession = new SfuSession({
      signaling: this.signaling,
      config,
      rtc,
      forceRelay: this.#options.forceRelay ?? false,
      onRemoteChange: () => {
        for (const participantId of this.#participants.keys()) {
          this.emit("remoteStreams", this.remoteStreams(participantId));
        }
      },
      onFailed: () => {
        if (this.#sfu === session) {
          void this.#restartSfu();
        }
      },
    });
    this.#sfu = session;
    try {
      // An observer offers only to receive (the SFU refuses anything else with `listen_only`).
      const observer = this.#listensOnly();
      await session.publish({
        audio: observer ? null : (this.#local?.getAudioTracks()[0] ?? null),
        camera: observer ? null : (this.#local?.getVideoTracks()[0] ?? null),
        screen: observer ? null : (this.#screen?.getVideoTracks()[0] ?? null),
        stream: observer ? null : this.#local,
      });
      const profile = this.#profileLimits();
      if (profile && this.#snapshot.profile !== config.defaultProfile) {
        await session.applyProfile(profile);
      }
    } catch (error) {
      if (this.#sfu !== session || this.#snapshot.status === "ended") {
        return;
      }
      session.close();
      this.#sfu = null;
      const code = error instanceof SignalingError ? error.code : "";
      if (code !== "wrong_topology" && code !== "waiting") {
        this.#fail(error);
        setTimeout(() => {
          if (this.#snapshot.topology === "sfu" && !this.#sfu && this.#inCall()) {
            void this.#startSfu();
          }
        }, 2000);
      }
    }
  }

  #stopSfu(): void {
    this.#sfu?.close();
    this.#sfu = null;
  }

  async #restartSfu(): Promise<void> {
    this.#stopSfu();
    await this.#startSfu();
  }

  async #sendMediaState(): Promise<void> {
    if (!this.#snapshot.participantId || this.#snapshot.status === "ended") {
      return;
    }
    await this.signaling.request("media:state", { ...this.#snapshot.media }).catch((error: unknown) => this.#fail(error));
  }

  // ---------------------------------------------------------------- quality

  #profileLimits(): ProfileLimits | null {
    const name = this.#snapshot.profile;
    return (name && this.#config?.qualityProfiles[name]) || null;
  }

  #startQualityReports(): void {
    if (this.#qualityTimer || !this.#rtc) {
      return;
    }
    const every = this.#options.qualityReportIntervalMs ?? 5000;
    this.#qualityTimer = setInterval(() => {
      this.reportQuality().catch((error: unknown) => {
        if (!(error instanceof SignalingError && ["disconnected", "timeout", "closed"].includes(error.code))) {
          this.#fail(error);
        }
      });
    }, every);
  }

  #applyRecommendation(recommendation: Recommendation, announce = true): void {
    const profile = this.#config?.qualityProfiles[recommendation.profile];
    this.#update({ profile: recommendation.profile });
    if (announce) {
      this.emit("recommendation", recommendation);
    }
    if (!profile || this.#screen) {
      return;
    }
    this.#mesh?.applyProfile(profile).catch((error: unknown) => console.warn("wakili: setParameters failed", error));
    this.#sfu?.applyProfile(profile).catch((error: unknown) => console.warn("wakili: setParameters failed", error));
  }

  // ---------------------------------------------------------------- recording

  async #onRecordingState(state: RecordingState): Promise<void> {
    const wasActive = this.#snapshot.recording.active;
    this.#update({ recording: state });
    this.emit("recording", state);
    // The lawyer's browser records p2p calls; the server records through the SFU.
    if (this.#snapshot.role !== "lawyer" || !this.#rtc || (state.server && !this.#uploader)) {
      return;
    }
    if (state.active && !this.#uploader) {
      await this.#startUploading();
    } else if (state.active) {
      this.#uploader?.resume();
    } else if (this.#uploader && state.reason === "consent_pending") {
      this.#uploader.pause();
    } else if (wasActive && this.#uploader) {
      await this.#completeUpload();
    }
  }

  async #startUploading(): Promise<void> {
    const stream = this.#recordedStream();
    if (!stream) {
      return;
    }
    const uploader = new RecordingUploader({
      api: this.api,
      consultationId: this.#options.consultationId,
      stream,
      chunkSeconds: this.#options.recordingChunkSeconds ?? 2,
      onProgress: (progress) => this.emit("recordingProgress", progress),
      ...(this.#options.createRecorder ? { createRecorder: this.#options.createRecorder } : {}),
    });
    this.#uploader = uploader;
    try {
      await uploader.start();
    } catch (error) {
      this.#uploader = null;
      this.#fail(error);
    }
  }

  async #completeUpload(): Promise<void> {
    const uploader = this.#uploader;
    this.#uploader = null;
    try {
      const done = await uploader?.stop();
      if (done) {
        this.emit("recordingCompleted", done);
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /** The other party's video with every voice mixed in; this side's video when alone. */
  #recordedStream(): MediaStream | null {
    const rtc = this.#rtc;
    if (!rtc) {
      return null;
    }
    const remotes = [...this.#participants.keys()]
      .map((id) => this.remoteStreams(id).camera)
      .filter((s): s is MediaStream => s !== null);
    const video =
      remotes.find((s) => s.getVideoTracks().length)?.getVideoTracks()[0] ?? this.#local?.getVideoTracks()[0] ?? null;
    const voices = [this.#local, ...remotes].filter((s): s is MediaStream => Boolean(s?.getAudioTracks().length));
    let audio: MediaStreamTrack[] = voices.flatMap((s) => s.getAudioTracks()).slice(0, 1);
    if (typeof AudioContext === "function" && voices.length > 1) {
      const context = new AudioContext();
      const mix = context.createMediaStreamDestination();
      for (const stream of voices) {
        context.createMediaStreamSource(stream).connect(mix);
      }
      audio = mix.stream.getAudioTracks();
    }
    return new rtc.MediaStream([...(video ? [video] : []), ...audio]);
  }

  // ---------------------------------------------------------------- state

  #patchParticipant(participantId: string, patch: Partial<Participant>): void {
    const p = this.#participants.get(participantId);
    if (!p) {
      return;
    }
    const updated = { ...p, ...patch };
    this.#participants.set(participantId, updated);
    this.#publishParticipants();
    this.emit("participantUpdated", updated);
  }

  #publishParticipants(): void {
    this.#update({ participants: [...this.#participants.values()] });
  }

  #update(patch: Partial<ConsultationSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...patch };
    this.emit("state", this.#snapshot);
  }

  #fail(error: unknown): void {
    this.emit("error", error instanceof Error ? error : new Error(String(error)));
  }

  async #finish(reason: EndReason, message: string): Promise<void> {
    if (this.#snapshot.status === "ended") {
      return;
    }
    const ended = { reason, message };
    this.#update({ status: "ended", ended, resumeToken: null });
    if (this.#uploader) {
      await this.#completeUpload();
    }
    this.#teardown();
    this.signaling.close();
    this.emit("ended", ended);
  }

  #teardown(): void {
    if (this.#qualityTimer) {
      clearInterval(this.#qualityTimer);
      this.#qualityTimer = null;
    }
    this.#mesh?.closeAll();
    this.#stopSfu();
    this.#screen?.getTracks().forEach((t) => t.stop());
    this.#screen = null;
    for (const off of this.#offs.splice(0)) {
      off();
    }
  }
}
