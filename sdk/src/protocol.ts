/**
 * The signaling protocol's types, derived from `src/generated/signaling.ts`, which is generated
 * from `docs/signaling.schema.json` (itself generated from the server's Rust types). Nothing here
 * names an event by hand: a new event on the server appears in these maps after
 * `npm run generate`.
 */

import type { components } from "./generated/signaling.js";

/** Every schema of the signaling protocol by name (`JoinAck`, `MemberView`, …). */
export type SignalingSchemas = components["schemas"];

/** Client → server events: name → `{payload, ackFields}`. */
export type ClientEventMap = SignalingSchemas["ClientEvents"];
/** The name of an event the client sends. */
export type ClientEventName = keyof ClientEventMap;
/** What `event` carries (`null`: nothing). */
export type Payload<E extends ClientEventName> = ClientEventMap[E]["payload"];
/** The fields of `event`'s successful acknowledgement, besides `ok: true`. */
export type AckFields<E extends ClientEventName> = ClientEventMap[E]["ackFields"];
/** The refusal a failed acknowledgement carries. */
export type Refusal = SignalingSchemas["Refusal"];
/** `event`'s acknowledgement as it comes over the wire. */
export type Ack<E extends ClientEventName> =
  | ({ ok: true } & AckFields<E>)
  | { ok: false; error: Refusal };

/** Server → client events: name → payload. */
export type ServerEventMap = SignalingSchemas["ServerEvents"];
/** The name of an event the server sends. */
export type ServerEventName = keyof ServerEventMap;

/** The event names of each direction at run time (checked against the schema by a unit test). */
export const CLIENT_EVENTS = [
  "auth:refresh",
  "consultation:end",
  "consultation:join",
  "consultation:leave",
  "media:answer",
  "media:layer-preference",
  "media:publish",
  "media:state",
  "media:subscription",
  "participant:admit",
  "quality:report",
  "recording:consent",
  "recording:start",
  "recording:stop",
  "signal",
] as const satisfies readonly ClientEventName[];

/** Server event names at run time (checked against the schema by a unit test). */
export const SERVER_EVENTS = [
  "auth:expiring",
  "call:accepted",
  "call:declined",
  "consultation:admitted",
  "consultation:ended",
  "media:layer",
  "media:offer",
  "media:topology",
  "media:track",
  "participant:admitted",
  "participant:joined",
  "participant:left",
  "participant:media",
  "participant:reconnecting",
  "participant:resumed",
  "quality-profile:changed",
  "quality:recommendation",
  "recording:consent-needed",
  "recording:consent-refused",
  "recording:consent-request",
  "recording:state",
  "session:closed",
  "signal",
  "speaker:active",
] as const satisfies readonly ServerEventName[];

// Names used throughout the SDK and by apps.
/** The ack of `consultation:join`: the room as the joiner finds it. */
export type JoinAck = SignalingSchemas["JoinAck"];
/** A participant as the server shows it. */
export type Participant = SignalingSchemas["MemberView"];
/** A participant's part in the consultation. */
export type ParticipantRole = SignalingSchemas["ParticipantRole"];
/** Microphone, camera and screen share on or off. */
export type MediaState = SignalingSchemas["MediaState"];
/** `p2p` or `sfu`: how media travels now. */
export type Topology = SignalingSchemas["Topology"];
/** How a consultation's media travels, as booked. */
export type MediaMode = SignalingSchemas["MediaMode"];
/** What `quality:report` sends. */
export type QualityReport = SignalingSchemas["QualityReport"];
/** The server's score of a quality report. */
export type QualityAck = SignalingSchemas["QualityAck"];
/** `quality:recommendation`. */
export type Recommendation = SignalingSchemas["Recommendation"];
/** `recording:state`. */
export type RecordingState = SignalingSchemas["RecordingState"];
/** `signal` as received. */
export type SignalMessage = SignalingSchemas["SignalOut"];
/** `offer`, `answer`, `candidate` or `restart`. */
export type SignalType = SignalingSchemas["SignalType"];
/** `media:track`. */
export type MediaTrackNotice = SignalingSchemas["MediaTrack"];
/** `session:closed`. */
export type SessionClosed = SignalingSchemas["SessionClosed"];
