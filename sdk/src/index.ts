/**
 * Wakili's TypeScript SDK.
 *
 * - `createApiClient`: the REST API, typed from the server's OpenAPI document.
 * - `SignalingClient`: Socket.IO signaling, typed from the protocol's JSON Schema, with queued
 *   emits while reconnecting and resume with the resume token.
 * - `Consultation`: join, waiting room, media peer to peer or through the SFU, quality, recording.
 * - `@wakili/sdk/react`: `useConsultation`.
 */

export { Consultation } from "./consultation/consultation.js";
export type {
  ConsultationEvents,
  ConsultationOptions,
  ConsultationSnapshot,
  ConsultationStatus,
  EndReason,
  QualitySample,
  RemoteStreams,
} from "./consultation/consultation.js";
export { platformWebRtc, systemClock } from "./consultation/environment.js";
export type { Clock, WebRtcEnvironment } from "./consultation/environment.js";
export { isOfferer, PeerMesh } from "./consultation/p2p.js";
export type { Peer, PeerMeshOptions } from "./consultation/p2p.js";
export { applyProfile, readStats } from "./consultation/quality.js";
export type { ProfileLimits, StatsReading, StatsSource, VideoSender } from "./consultation/quality.js";
export { RecordingUploader } from "./consultation/recorder.js";
export type { Recorder, RecorderFactory, RecordingUploaderOptions, UploadProgress } from "./consultation/recorder.js";
export { iceUfrag, sdpSections } from "./consultation/sdp.js";
export type { SdpSection } from "./consultation/sdp.js";
export { inboundTrack, SfuSession } from "./consultation/sfu.js";
export type { InboundMedia, InboundTrack, PublishTracks, RemoteMedia, SfuSessionOptions } from "./consultation/sfu.js";
export { Emitter } from "./emitter.js";
export {
  ApiError,
  ConnectionRefusedError,
  MediaError,
  SERVER_ERROR_CODES,
  SignalingError,
  WakiliError,
} from "./errors.js";
export type { ServerErrorCode, SignalingErrorCode } from "./errors.js";
export { CLIENT_EVENTS, SERVER_EVENTS } from "./protocol.js";
export type * from "./protocol.js";
export { createApiClient, currentToken, expectData } from "./rest.js";
export type {
  ApiClient,
  ApiClientOptions,
  ApiComponents,
  ApiOperations,
  ApiPaths,
  ApiSchemas,
  TokenSource,
} from "./rest.js";
export { SignalingClient } from "./signaling.js";
export type {
  ClientToServerEvents,
  ConnectionState,
  PayloadArgs,
  RequestOptions,
  ServerToClientEvents,
  SignalingLifecycle,
  SignalingOptions,
  WakiliSocket,
} from "./signaling.js";
