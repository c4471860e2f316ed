// Media helpers for the call page: what `quality:report` says (from getStats), how a quality
// profile is applied to a sender (setParameters), and the capture constraints.

/** getUserMedia constraints for a profile of the server's `qualityProfiles` and the chosen devices. */
export function cameraConstraints(config, profileName, devices) {
  const profile = config.qualityProfiles[profileName] ?? config.qualityProfiles[config.defaultProfile];
  const video = profile ? { ...profile.constraints } : {};
  if (devices.camera) {
    video.deviceId = { exact: devices.camera };
  }
  const audio = { ...(config.audio?.constraints ?? {}) };
  if (devices.microphone) {
    audio.deviceId = { exact: devices.microphone };
  }
  return { audio, video };
}

/**
 * Reads one connection's figures. `previous` is the last call's result (for rates); returns the
 * `quality:report` fields plus `at` and byte counters for the next call.
 */
export async function readStats(pc, previous) {
  const stats = await pc.getStats();
  const byId = new Map();
  stats.forEach((s) => byId.set(s.id, s));
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
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
  let inbound = null;
  let bytesIn = 0;
  let bytesOut = 0;
  let lost = 0;
  let received = 0;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp") {
      bytesIn += s.bytesReceived ?? 0;
      lost += Math.max(0, s.packetsLost ?? 0);
      received += s.packetsReceived ?? 0;
      if (s.kind === "video") {
        inbound = s;
      }
    } else if (s.type === "outbound-rtp") {
      bytesOut += s.bytesSent ?? 0;
    }
  });
  const at = performance.now();
  const seconds = previous ? (at - previous.at) / 1000 : 0;
  const rate = (now, before) => (seconds > 0 ? Math.max(0, ((now - before) * 8) / 1000 / seconds) : 0);
  const lostDelta = previous ? lost - previous.lost : lost;
  const receivedDelta = previous ? received - previous.received : received;
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;
  const candidateType = [local?.candidateType, remote?.candidateType].includes("relay")
    ? "relay"
    : (local?.candidateType ?? "");
  return {
    at,
    lost,
    received,
    bytesIn,
    bytesOut,
    report: {
      rttMs: round((pair?.currentRoundTripTime ?? 0) * 1000),
      jitterMs: round((inbound?.jitter ?? 0) * 1000),
      packetLossPct: lostDelta + receivedDelta > 0 ? round((100 * lostDelta) / (lostDelta + receivedDelta)) : 0,
      outboundKbps: round(previous ? rate(bytesOut, previous.bytesOut) : 0),
      inboundKbps: round(previous ? rate(bytesIn, previous.bytesIn) : 0),
      frameRate: round(inbound?.framesPerSecond ?? 0),
      width: inbound?.frameWidth ?? 0,
      height: inbound?.frameHeight ?? 0,
      candidateType: ["host", "srflx", "prflx", "relay"].includes(candidateType) ? candidateType : "",
    },
  };
}

function round(value) {
  return Math.round(Math.min(Math.max(value, 0), 1e6) * 10) / 10;
}

/**
 * Applies a quality profile (`{width, height, frameRate, maxBitrate}`) to a video sender:
 * bitrate cap, resolution scale-down from what the track captures, frame-rate cap.
 */
export async function applyProfile(sender, profile) {
  if (!sender?.track || sender.track.kind !== "video") {
    return;
  }
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) {
    params.encodings = [{}];
  }
  const captured = sender.track.getSettings().height ?? profile.height;
  for (const encoding of params.encodings) {
    encoding.maxBitrate = profile.maxBitrate;
    encoding.maxFramerate = profile.frameRate;
    encoding.scaleResolutionDownBy = Math.max(1, captured / profile.height);
  }
  await sender.setParameters(params);
}

/** getDisplayMedia options from the server's `screenShare`. */
export function displayConstraints(config) {
  return config.screenShare?.constraints ?? { video: true, audio: false };
}
