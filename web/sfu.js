// The call's media through the server's SFU (topology "sfu", docs/signaling.md): one
// RTCPeerConnection to the server for the whole call.
//
// Publishing: the microphone, the camera as simulcast layers (`sendEncodings` from
// /webrtc/config: rids q, h, f) and the screen share if any go into one offer, sent once ICE
// gathering is complete (the server is ICE-lite and takes no trickled candidates) with
// `media:publish`; its ack carries the answer. Receiving: the server adds an m-line per track
// others publish and sends `media:offer`; we answer with `media:answer`. Each received m-line's
// `a=msid:<participantId> t<trackId>` says whose track it is; a publisher's first video track is
// its camera, a later one its screen share.

/** How long to wait for ICE gathering before publishing with the candidates found so far. */
const GATHERING_TIMEOUT_MS = 3000;

/** The m-sections of an SDP, each with its mid, msid (stream and track id), direction and port. */
function sections(sdp) {
  return (sdp ?? "")
    .split(/\r?\nm=/)
    .slice(1)
    .map((text) => {
      const attribute = (name) => new RegExp(`^a=${name}:(.*)$`, "m").exec(text)?.[1]?.trim();
      const direction = /^a=(sendrecv|sendonly|recvonly|inactive)$/m.exec(text)?.[1] ?? "sendrecv";
      const [streamId, trackLabel] = (attribute("msid") ?? "").split(/\s+/);
      return {
        kind: text.split(" ")[0],
        port: Number(text.split(" ")[1]),
        mid: attribute("mid"),
        direction,
        streamId: streamId || null,
        trackId: /^t(\d+)$/.test(trackLabel ?? "") ? Number(trackLabel.slice(1)) : null,
      };
    });
}

/** The session-level (or first) `a=ice-ufrag` of an SDP. */
function iceUfrag(sdp) {
  return /^a=ice-ufrag:(\S+)/m.exec(sdp ?? "")?.[1] ?? null;
}

/** Whether two lists of tracks hold the same tracks in the same order. */
function sameTracks(a, b) {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}

/** One participant's media session with the SFU. */
export class SfuSession {
  /**
   * `socket`: the signaling connection; `config`: GET /webrtc/config; `forceRelay`: relay
   * candidates only; `onRemoteChange()`: the received streams changed; `onFailed()`: the
   * connection failed for good (the caller publishes again).
   */
  constructor({ socket, config, forceRelay, onRemoteChange, onFailed }) {
    this.socket = socket;
    this.config = config;
    this.onRemoteChange = onRemoteChange ?? (() => {});
    this.onFailed = onFailed ?? (() => {});
    this.pc = new RTCPeerConnection({
      iceServers: config.iceServers,
      iceTransportPolicy: forceRelay ? "relay" : config.iceTransportPolicy,
      bundlePolicy: "max-bundle",
    });
    /** getStats figures of the last quality report (media.js readStats). */
    this.stats = null;
    /** Remote media by publisher: {camera: MediaStream, screen: MediaStream | null, tracks}. */
    this.remotes = new Map();
    /** The layer the server says we receive, by track id (`media:layer`). */
    this.layers = new Map();
    this.senders = { audio: null, camera: null, screen: null };
    this.closed = false;
    /** Set once the server answered `media:publish`, with the ICE username it answered with. */
    this.published = false;
    this.serverUfrag = null;
    // Publishing and answering offers run one at a time, in order.
    this.queue = Promise.resolve();
    this.pc.ontrack = () => queueMicrotask(() => this.#collectRemotes());
    this.pc.onconnectionstatechange = () => {
      if (this.pc.connectionState === "failed" && !this.closed) {
        this.onFailed();
      }
    };
  }

  #serially(task) {
    const run = this.queue.then(task);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Publishes `audio`, `camera` and `screen` (tracks, any may be missing) of `stream`:
   * offer, ICE gathering, `media:publish`, the answer. Rejects with the server's error.
   */
  publish({ audio, camera, screen, stream }) {
    return this.#serially(async () => {
      const streams = [stream ?? new MediaStream()];
      if (audio) {
        this.senders.audio = this.pc.addTransceiver(audio, { direction: "sendonly", streams }).sender;
      }
      if (camera) {
        const layers = this.config.simulcast?.enabled ? this.config.simulcast.encodings : [];
        const sendEncodings = layers.length
          ? layers.map((e) => ({
              rid: e.rid,
              scaleResolutionDownBy: e.scaleResolutionDownBy,
              maxBitrate: e.maxBitrate,
              maxFramerate: e.maxFramerate,
            }))
          : [{ maxBitrate: this.config.qualityProfiles?.[this.config.defaultProfile]?.maxBitrate }];
        const transceiver = this.pc.addTransceiver(camera, { direction: "sendonly", streams, sendEncodings });
        this.#preferCodecs(transceiver);
        this.senders.camera = transceiver.sender;
      }
      if (screen) {
        const sendEncodings = [{ maxBitrate: this.config.screenShare?.maxBitrate }];
        const transceiver = this.pc.addTransceiver(screen, { direction: "sendonly", streams, sendEncodings });
        this.#preferCodecs(transceiver);
        this.senders.screen = transceiver.sender;
      }
      if (!audio && !camera && !screen) {
        // Nothing to send (an observer, or no devices): a data channel gives the offer its one
        // m-line; the server adds the others' tracks in its own offers.
        this.pc.createDataChannel("wakili");
      }
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await this.#gathered();
      const answer = await this.socket.request("media:publish", { sdp: this.pc.localDescription.sdp });
      if (!answer?.ok) {
        const error = new Error(answer?.error?.message ?? "media:publish was not answered");
        error.code = answer?.error?.code;
        throw error;
      }
      await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      this.serverUfrag = iceUfrag(answer.sdp);
      this.published = true;
    });
  }

  /**
   * The server's `media:offer`: its m-lines for others' tracks, answered with `media:answer`.
   * The server offers only once this session is connected; an offer that comes earlier, or with
   * other ICE credentials, belongs to a session this one replaced and is dropped.
   */
  offer(sdp) {
    if (!this.published || this.closed) {
      return Promise.resolve();
    }
    return this.#serially(async () => {
      if (this.closed || iceUfrag(sdp) !== this.serverUfrag) {
        console.warn("media:offer of a replaced session ignored");
        return;
      }
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      this.#collectRemotes();
      const answer = await this.socket.request("media:answer", { sdp: this.pc.localDescription.sdp });
      if (!answer?.ok) {
        console.warn("media:answer refused", answer?.error);
      }
    });
  }

  /** `media:layer {trackId, rid}`. */
  layerChanged({ trackId, rid }) {
    this.layers.set(trackId, rid);
  }

  /** Asks the server for one layer (`q`, `h`, `f`) of every video we receive; `null` lets it choose. */
  async setLayerPreference(rid) {
    const answer = await this.socket.request("media:layer-preference", { rid });
    if (!answer?.ok) {
      throw new Error(answer?.error?.message ?? "media:layer-preference was not answered");
    }
    return answer;
  }

  /** Swaps a published track in place (a device change): `kind` is audio, camera or screen. */
  async replaceTrack(kind, track) {
    const sender = this.senders[kind];
    if (sender && track && sender.track !== track) {
      await sender.replaceTrack(track);
    }
  }

  /**
   * Applies a quality profile to the camera: each simulcast layer keeps its own cap, under the
   * profile's. Which layer others receive is the server's choice.
   */
  async applyProfile(profile) {
    const sender = this.senders.camera;
    if (!sender || !profile) {
      return;
    }
    const configured = new Map((this.config.simulcast?.encodings ?? []).map((e) => [e.rid, e.maxBitrate]));
    const params = sender.getParameters();
    for (const encoding of params.encodings ?? []) {
      encoding.maxBitrate = Math.min(configured.get(encoding.rid) ?? profile.maxBitrate, profile.maxBitrate);
    }
    await sender.setParameters(params);
  }

  /** The camera stream (audio and camera video) received from `participantId`, if any. */
  cameraStream(participantId) {
    return this.remotes.get(participantId)?.camera ?? null;
  }

  /** The screen share received from `participantId`, if any. */
  screenStream(participantId) {
    return this.remotes.get(participantId)?.screen ?? null;
  }

  /**
   * What arrives from each publisher, from getStats: `{[participantId]: {video, audio,
   * screen}}`, each `{trackId, framesDecoded, frameWidth, frameHeight, framesPerSecond,
   * packetsReceived, bytesReceived, rid}` (what applies).
   */
  async inbound() {
    const byTrack = new Map();
    for (const [participantId, remote] of this.remotes) {
      for (const entry of remote.tracks) {
        byTrack.set(entry.track.id, { participantId, ...entry });
      }
    }
    const result = {};
    (await this.pc.getStats()).forEach((s) => {
      if (s.type !== "inbound-rtp") {
        return;
      }
      const entry = byTrack.get(s.trackIdentifier);
      if (!entry) {
        return;
      }
      const slot = entry.kind === "audio" ? "audio" : entry.role;
      result[entry.participantId] ??= {};
      result[entry.participantId][slot] = {
        trackId: entry.trackId,
        packetsReceived: s.packetsReceived ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        framesPerSecond: s.framesPerSecond ?? 0,
        rid: this.layers.get(entry.trackId) ?? null,
      };
    });
    return result;
  }

  /** The candidate types of the selected pair: `{local, remote}`. */
  async candidates() {
    const stats = await this.pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let pair = null;
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        pair = byId.get(s.selectedCandidatePairId);
      }
    });
    return {
      local: pair ? (byId.get(pair.localCandidateId)?.candidateType ?? null) : null,
      remote: pair ? (byId.get(pair.remoteCandidateId)?.candidateType ?? null) : null,
    };
  }

  close() {
    this.closed = true;
    this.pc.close();
    this.remotes.clear();
  }

  async #gathered() {
    if (this.pc.iceGatheringState === "complete") {
      return;
    }
    await new Promise((resolve) => {
      const timer = setTimeout(done, GATHERING_TIMEOUT_MS);
      const pc = this.pc;
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === "complete") {
          done();
        }
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  /** Puts the server's video codecs first, in its order (`codecs.video` of /webrtc/config). */
  #preferCodecs(transceiver) {
    const order = this.config.codecs?.video ?? [];
    const capabilities = RTCRtpSender.getCapabilities?.("video")?.codecs;
    if (!order.length || !capabilities || !transceiver.setCodecPreferences) {
      return;
    }
    const rank = (codec) => {
      const i = order.findIndex((mime) => mime.toLowerCase() === codec.mimeType.toLowerCase());
      return i < 0 ? order.length : i;
    };
    const sorted = [...capabilities].sort((a, b) => rank(a) - rank(b));
    try {
      transceiver.setCodecPreferences(sorted);
    } catch (error) {
      console.warn("codec preferences refused", error);
    }
  }

  /**
   * Rebuilds the streams by publisher from the transceivers the server opened: every m-line it
   * sends on, with the msid naming publisher and track. A stream object changes only when its
   * tracks do, so video elements showing it are left alone otherwise.
   */
  #collectRemotes() {
    if (this.closed) {
      return;
    }
    const byMid = new Map(sections(this.pc.remoteDescription?.sdp).map((s) => [s.mid, s]));
    const found = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      const section = byMid.get(transceiver.mid);
      if (
        !section ||
        section.port === 0 ||
        transceiver.stopped ||
        transceiver.currentDirection === "stopped" ||
        !section.streamId ||
        section.trackId === null ||
        !["sendonly", "sendrecv"].includes(section.direction)
      ) {
        continue;
      }
      const track = transceiver.receiver.track;
      const list = found.get(section.streamId) ?? [];
      list.push({ track, kind: track.kind, trackId: section.trackId, mid: transceiver.mid });
      found.set(section.streamId, list);
    }
    let changed = false;
    for (const [participantId, entries] of found) {
      entries.sort((a, b) => a.trackId - b.trackId);
      const videos = entries.filter((e) => e.kind === "video");
      videos.forEach((e, i) => (e.role = i === 0 ? "video" : "screen"));
      const audio = entries.filter((e) => e.kind === "audio").map((e) => e.track);
      const cameraTracks = [...audio, ...videos.slice(0, 1).map((e) => e.track)];
      const screenTracks = videos.slice(1).map((e) => e.track);
      const old = this.remotes.get(participantId);
      const camera =
        old && sameTracks(old.camera.getTracks(), cameraTracks) ? old.camera : new MediaStream(cameraTracks);
      let screen = null;
      if (screenTracks.length) {
        screen =
          old?.screen && sameTracks(old.screen.getTracks(), screenTracks) ? old.screen : new MediaStream(screenTracks);
      }
      changed ||= !old || camera !== old.camera || screen !== old.screen;
      this.remotes.set(participantId, { camera, screen, tracks: entries });
    }
    for (const participantId of [...this.remotes.keys()]) {
      if (!found.has(participantId)) {
        this.remotes.delete(participantId);
        changed = true;
      }
    }
    if (changed) {
      this.onRemoteChange();
    }
  }
}
