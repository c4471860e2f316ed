import { describe, expect, it } from "vitest";

import { applyProfile, readStats, type StatsEntry, type VideoSender } from "../../src/consultation/quality.js";

function stats(entries: StatsEntry[]) {
  return new Map(entries.map((e) => [e.id, e]));
}

function connection(bytesIn: number, bytesOut: number, lost: number, received: number, remoteType = "srflx") {
  return stats([
    { id: "T", type: "transport", selectedCandidatePairId: "CP" },
    { id: "CP", type: "candidate-pair", localCandidateId: "L", remoteCandidateId: "R", currentRoundTripTime: 0.042 },
    { id: "L", type: "local-candidate", candidateType: "host" },
    { id: "R", type: "remote-candidate", candidateType: remoteType },
    {
      id: "IV",
      type: "inbound-rtp",
      kind: "video",
      bytesReceived: bytesIn,
      packetsLost: lost,
      packetsReceived: received,
      jitter: 0.0031,
      framesPerSecond: 29.97,
      frameWidth: 1280,
      frameHeight: 720,
    },
    { id: "OV", type: "outbound-rtp", kind: "video", bytesSent: bytesOut },
  ]);
}

describe("readStats", () => {
  it("reports rates, loss and the candidate type against the previous reading", () => {
    const first = readStats(connection(1_000_000, 500_000, 10, 990), null, 10_000);
    expect(first.report).toMatchObject({ inboundKbps: 0, outboundKbps: 0, packetLossPct: 1, rttMs: 42 });
    const second = readStats(connection(1_625_000, 812_500, 20, 1_980), first, 15_000);
    expect(second.report).toEqual({
      rttMs: 42,
      jitterMs: 3.1,
      packetLossPct: 1,
      outboundKbps: 500,
      inboundKbps: 1000,
      frameRate: 30,
      width: 1280,
      height: 720,
      candidateType: "host",
    });
  });

  it("says relay when either side of the selected pair relays", () => {
    expect(readStats(connection(0, 0, 0, 0, "relay"), null, 0).report.candidateType).toBe("relay");
  });

  it("falls back to the nominated pair and reports zeros without media", () => {
    const report = readStats(
      stats([{ id: "CP", type: "candidate-pair", state: "succeeded", nominated: true, currentRoundTripTime: 0.1 }]),
      null,
      0,
    ).report;
    expect(report).toMatchObject({ rttMs: 100, packetLossPct: 0, width: 0, candidateType: "" });
  });
});

function sender(encodings: RTCRtpEncodingParameters[], height = 720): VideoSender & { applied: RTCRtpSendParameters[] } {
  const applied: RTCRtpSendParameters[] = [];
  return {
    applied,
    track: { kind: "video", getSettings: () => ({ height }) },
    getParameters: () => ({ encodings: encodings.map((e) => ({ ...e })) }) as RTCRtpSendParameters,
    setParameters: async (p) => {
      applied.push(p);
    },
  };
}

describe("applyProfile", () => {
  it("caps bitrate and frame rate and scales down from the captured height", async () => {
    const s = sender([{}]);
    await applyProfile(s, { height: 360, frameRate: 15, maxBitrate: 300_000 });
    expect(s.applied[0]?.encodings).toEqual([{ maxBitrate: 300_000, maxFramerate: 15, scaleResolutionDownBy: 2 }]);
  });

  it("keeps each simulcast layer's cap under the profile's", async () => {
    const s = sender([{ rid: "q" }, { rid: "h" }, { rid: "f" }]);
    const layers = new Map([
      ["q", 100_000],
      ["h", 250_000],
      ["f", 1_000_000],
    ]);
    await applyProfile(s, { height: 360, frameRate: 15, maxBitrate: 300_000 }, layers);
    expect(s.applied[0]?.encodings.map((e) => e.maxBitrate)).toEqual([100_000, 250_000, 300_000]);
  });

  it("leaves audio senders alone", async () => {
    const s = sender([{}]);
    await applyProfile({ ...s, track: { kind: "audio", getSettings: () => ({}) } }, { height: 1, frameRate: 1, maxBitrate: 1 });
    expect(s.applied).toEqual([]);
  });
});
