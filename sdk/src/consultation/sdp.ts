/**
 * The little SDP reading the SFU session needs: which m-line carries whose track.
 */

/** One m-section of an SDP. */
export interface SdpSection {
  /** `audio`, `video` or `application`. */
  kind: string;
  /** The port (0: rejected or stopped). */
  port: number;
  /** `a=mid`. */
  mid: string | null;
  /** `sendrecv`, `sendonly`, `recvonly` or `inactive`. */
  direction: string;
  /** The msid's stream id: through the SFU, the publisher's participant id. */
  streamId: string | null;
  /** The SFU's track id from the msid's track label `t<id>`, if it is one. */
  trackId: number | null;
}

/** The m-sections of `sdp`, in order. */
export function sdpSections(sdp: string | null | undefined): SdpSection[] {
  return (sdp ?? "")
    .split(/\r?\nm=/)
    .slice(1)
    .map((text) => {
      const attribute = (name: string) => new RegExp(`^a=${name}:(.*)$`, "m").exec(text)?.[1]?.trim();
      const direction = /^a=(sendrecv|sendonly|recvonly|inactive)$/m.exec(text)?.[1] ?? "sendrecv";
      const [streamId, trackLabel] = (attribute("msid") ?? "").split(/\s+/);
      const [kind = "", port = "0"] = text.split(" ");
      return {
        kind,
        port: Number(port),
        mid: attribute("mid") ?? null,
        direction,
        streamId: streamId || null,
        trackId: trackLabel && /^t\d+$/.test(trackLabel) ? Number(trackLabel.slice(1)) : null,
      };
    });
}

/** The first `a=ice-ufrag` of `sdp`: identifies the server session an offer belongs to. */
export function iceUfrag(sdp: string | null | undefined): string | null {
  return /^a=ice-ufrag:(\S+)/m.exec(sdp ?? "")?.[1] ?? null;
}
