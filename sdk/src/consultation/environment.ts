/**
 * What the SDK takes from the platform for media: browsers have it all on `globalThis`; React
 * Native apps pass `react-native-webrtc`'s classes; Node (tests, bots) has none, and then a
 * consultation runs without media (signaling only).
 */

/** The WebRTC classes the media code uses. */
export interface WebRtcEnvironment {
  /** `RTCPeerConnection`. */
  RTCPeerConnection: typeof RTCPeerConnection;
  /** `MediaStream`. */
  MediaStream: typeof MediaStream;
  /** `RTCRtpSender.getCapabilities`, to order codecs (optional). */
  senderCapabilities?: (kind: string) => RTCRtpCapabilities | null;
}

/** The platform's WebRTC, when it has one. */
export function platformWebRtc(): WebRtcEnvironment | null {
  const g = globalThis as Partial<typeof globalThis>;
  if (typeof g.RTCPeerConnection !== "function" || typeof g.MediaStream !== "function") {
    return null;
  }
  const sender = g.RTCRtpSender;
  return {
    RTCPeerConnection: g.RTCPeerConnection,
    MediaStream: g.MediaStream,
    ...(sender?.getCapabilities ? { senderCapabilities: (kind: string) => sender.getCapabilities(kind) } : {}),
  };
}

/** A clock for intervals and elapsed time (tests pass their own). */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
}

/** `performance.now()` where there is one, else `Date.now()`. */
export const systemClock: Clock = {
  now: () => (typeof performance !== "undefined" ? performance.now() : Date.now()),
};
