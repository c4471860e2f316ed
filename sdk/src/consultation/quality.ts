/**
 * Connection quality: the `quality:report` figures read from `getStats()`, and how a quality
 * profile (from `/webrtc/config`, chosen by the server's `quality:recommendation`) is applied to
 * a video sender.
 */

import type { QualityReport } from "../protocol.js";

/** One reading of a connection's counters; the next reading's rates are taken against it. */
export interface StatsReading {
  /** When it was taken (ms, the clock of the caller). */
  at: number;
  lost: number;
  received: number;
  bytesIn: number;
  bytesOut: number;
  /** The report for this reading (rates are 0 on the first one). */
  report: QualityReport;
}

/** The stats entries `readStats` looks at (a subset of `RTCStats` subtypes). */
export interface StatsEntry {
  id: string;
  type: string;
  [field: string]: unknown;
}

/** Anything with `forEach` over stats entries: an `RTCStatsReport` or a `Map`. */
export interface StatsSource {
  forEach(callback: (entry: StatsEntry) => void): void;
}

const CANDIDATE_TYPES = ["host", "srflx", "prflx", "relay"];

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

function round(value: number): number {
  return Math.round(Math.min(Math.max(value, 0), 1e6) * 10) / 10;
}

/**
 * Turns one `getStats()` result into a quality report. `previous` is the last reading of the same
 * connection (rates need two); `now` is the current time in ms.
 */
export function readStats(stats: StatsSource, previous: StatsReading | null, now: number): StatsReading {
  const byId = new Map<string, StatsEntry>();
  stats.forEach((s) => byId.set(s.id, s));
  let pair: StatsEntry | undefined;
  stats.forEach((s) => {
    if (s.type === "transport" && typeof s.selectedCandidatePairId === "string") {
      pair = byId.get(s.selectedCandidatePairId) ?? pair;
    }
  });
  if (!pair) {
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.state === "succeeded" && s.nominated) {
        pair = s;
      }
    });
  }
  let inbound: StatsEntry | undefined;
  let bytesIn = 0;
  let bytesOut = 0;
  let lost = 0;
  let received = 0;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      bytesIn += num(s.bytesReceived);
      lost += Math.max(0, num(s.packetsLost));
      received += num(s.packetsReceived);
      if (s.kind === "video") {
        inbound = s;
      }
    } else if (s.type === "outbound-rtp") {
      bytesOut += num(s.bytesSent);
    }
  });
  const seconds = previous ? (now - previous.at) / 1000 : 0;
  const rate = (current: number, before: number) =>
    seconds > 0 ? Math.max(0, ((current - before) * 8) / 1000 / seconds) : 0;
  const lostDelta = previous ? lost - previous.lost : lost;
  const receivedDelta = previous ? received - previous.received : received;
  const local = pair && typeof pair.localCandidateId === "string" ? byId.get(pair.localCandidateId) : undefined;
  const remote = pair && typeof pair.remoteCandidateId === "string" ? byId.get(pair.remoteCandidateId) : undefined;
  const localType = typeof local?.candidateType === "string" ? local.candidateType : "";
  const candidateType = localType === "relay" || remote?.candidateType === "relay" ? "relay" : localType;
  return {
    at: now,
    lost,
    received,
    bytesIn,
    bytesOut,
    report: {
      rttMs: round(num(pair?.currentRoundTripTime) * 1000),
      jitterMs: round(num(inbound?.jitter) * 1000),
      packetLossPct: lostDelta + receivedDelta > 0 ? round((100 * lostDelta) / (lostDelta + receivedDelta)) : 0,
      outboundKbps: round(previous ? rate(bytesOut, previous.bytesOut) : 0),
      inboundKbps: round(previous ? rate(bytesIn, previous.bytesIn) : 0),
      frameRate: round(num(inbound?.framesPerSecond)),
      width: num(inbound?.frameWidth),
      height: num(inbound?.frameHeight),
      candidateType: CANDIDATE_TYPES.includes(candidateType) ? candidateType : "",
    },
  };
}

/** The parts of a quality profile a sender is held to. */
export interface ProfileLimits {
  height: number;
  frameRate: number;
  /** Bits per second. */
  maxBitrate: number;
}

/** The parts of `RTCRtpSender` `applyProfile` uses. */
export interface VideoSender {
  track: { kind: string; getSettings(): { height?: number } } | null;
  getParameters(): RTCRtpSendParameters;
  setParameters(parameters: RTCRtpSendParameters): Promise<void>;
}

/**
 * Holds a video sender to a profile: bitrate cap, scale-down from the captured height, frame-rate
 * cap. With simulcast (`layerBitrates` by rid), each layer keeps its own cap under the profile's.
 */
export async function applyProfile(
  sender: VideoSender | null | undefined,
  profile: ProfileLimits,
  layerBitrates?: ReadonlyMap<string, number>,
): Promise<void> {
  if (!sender?.track || sender.track.kind !== "video") {
    return;
  }
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) {
    params.encodings = [{}];
  }
  const simulcast = layerBitrates !== undefined && params.encodings.some((e) => e.rid);
  const captured = sender.track.getSettings().height ?? profile.height;
  for (const encoding of params.encodings) {
    if (simulcast) {
      const layer = encoding.rid ? layerBitrates.get(encoding.rid) : undefined;
      encoding.maxBitrate = Math.min(layer ?? profile.maxBitrate, profile.maxBitrate);
    } else {
      encoding.maxBitrate = profile.maxBitrate;
      encoding.maxFramerate = profile.frameRate;
      encoding.scaleResolutionDownBy = Math.max(1, captured / profile.height);
    }
  }
  await sender.setParameters(params);
}
