import { describe, expect, it } from "vitest";

import { iceUfrag, sdpSections } from "../../src/consultation/sdp.js";

const OFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=ice-ufrag:srv1",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=mid:0",
  "a=sendonly",
  "a=msid:participant-7 t3",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "a=mid:1",
  "a=sendonly",
  "a=msid:participant-7 t4",
  "m=video 0 UDP/TLS/RTP/SAVPF 96",
  "a=mid:2",
  "a=inactive",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=mid:3",
  "",
].join("\r\n");

describe("sdpSections", () => {
  it("reads kind, port, mid, direction and the SFU's msid of each m-line", () => {
    expect(sdpSections(OFFER)).toEqual([
      { kind: "audio", port: 9, mid: "0", direction: "sendonly", streamId: "participant-7", trackId: 3 },
      { kind: "video", port: 9, mid: "1", direction: "sendonly", streamId: "participant-7", trackId: 4 },
      { kind: "video", port: 0, mid: "2", direction: "inactive", streamId: null, trackId: null },
      { kind: "application", port: 9, mid: "3", direction: "sendrecv", streamId: null, trackId: null },
    ]);
  });

  it("finds the ICE username that identifies the server's session", () => {
    expect(iceUfrag(OFFER)).toBe("srv1");
    expect(iceUfrag(undefined)).toBeNull();
  });
});
