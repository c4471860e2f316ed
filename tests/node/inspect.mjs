// How the browser scenarios look inside the reference web client. The page puts nothing on
// `window`; it hands each SDK `Consultation` it makes to `window.__WAKILI_DEVTOOLS__.attach` if a
// script defined that hook first (web/src/call/devtools.ts). `installInspector(context)` adds such
// a script to every page of a browser context: it builds `window.wakili`, the view the scenarios
// read (participant, topology, connections, received media, recordings, restarts, timings), from
// the Consultation's public API and from what the page asks of the browser (capture, recorders).

/** Runs in the page before its own scripts. */
function inspector() {
  const view = {
    call: null,
    /** Since the join started (or the admission, for someone who waited). */
    joinStartedAt: null,
    firstRemoteFrameMs: null,
    switchedToSfuAt: null,
    iceRestarts: 0,
    tokenRefreshes: 0,
    completedRecording: null,
    /** MediaRecorders the page made: a browser recording. */
    recordersMade: 0,
    local: null,
    lastScreen: null,
  };
  const snapshot = () => view.call?.snapshot ?? null;
  Object.defineProperties(view, {
    participantId: { get: () => snapshot()?.participantId ?? null },
    topology: { get: () => snapshot()?.topology ?? "p2p" },
    profile: { get: () => snapshot()?.profile ?? null },
    resumed: { get: () => Boolean(snapshot()?.resumed) },
    joined: { get: () => Boolean(snapshot()?.participantId) && snapshot()?.status !== "ended" },
    ended: { get: () => snapshot()?.status === "ended" },
    recording: { get: () => snapshot()?.recording ?? { active: false, server: false } },
    lastQuality: { get: () => snapshot()?.quality ?? null },
    connected: { get: () => view.call?.signaling.state === "connected" },
    /** socket.io-client's transport now: "polling" or "websocket". */
    transport: { get: () => view.call?.signaling.socket?.io.engine?.transport?.name ?? null },
    screen: { get: () => (snapshot()?.media.screen ? view.lastScreen : null) },
    /** Peer-to-peer connections by participant id: `{pc}`. */
    peers: {
      get: () => {
        const peers = new Map();
        for (const p of snapshot()?.participants ?? []) {
          const pc = view.call.peerConnection(p.participantId);
          if (pc) peers.set(p.participantId, { pc });
        }
        return peers;
      },
    },
    /** The connection to the SFU, if there is one. */
    sfu: {
      get: () => {
        if (snapshot()?.topology !== "sfu" || !view.call.connections()[0]) return null;
        const pc = view.call.connections()[0];
        return {
          pc,
          /** The candidate types of the selected pair. */
          async candidates() {
            const stats = await pc.getStats();
            const byId = new Map();
            stats.forEach((s) => byId.set(s.id, s));
            let pair = null;
            stats.forEach((s) => {
              if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
            });
            return {
              local: pair ? (byId.get(pair.localCandidateId)?.candidateType ?? null) : null,
              remote: pair ? (byId.get(pair.remoteCandidateId)?.candidateType ?? null) : null,
            };
          },
          /** Sends `track` instead of the microphone (the camera goes on). */
          async replaceTrack(kind, track) {
            if (kind !== "audio") throw new Error("only the microphone is replaced here");
            const stream = new MediaStream([track, ...(view.local?.getVideoTracks() ?? [])]);
            view.local = stream;
            await view.call.setLocalStream(stream);
          },
        };
      },
    },
  });
  view.inboundStats = () => view.call?.inboundMedia() ?? Promise.resolve({});
  view.setLayerPreference = (rid) => view.call?.setLayerPreference(rid);
  /** Drops the signaling transport, as a network change does; socket.io-client reconnects. */
  view.dropConnection = () => view.call?.signaling.socket?.io.engine.close();
  view.sendSignal = (message) => view.call?.signaling.send("signal", message);
  /** Whether the REST API takes the token the page uses now. */
  view.apiAnswers = async () => (await view.call.api.GET("/api/v1/me")).response.status;

  const devices = navigator.mediaDevices;
  if (devices) {
    const getUserMedia = devices.getUserMedia.bind(devices);
    devices.getUserMedia = async (...args) => (view.local = await getUserMedia(...args));
    const getDisplayMedia = devices.getDisplayMedia?.bind(devices);
    if (getDisplayMedia) {
      devices.getDisplayMedia = async (...args) => (view.lastScreen = await getDisplayMedia(...args));
    }
  }
  if (window.MediaRecorder) {
    const Recorder = window.MediaRecorder;
    window.MediaRecorder = class extends Recorder {
      constructor(...args) {
        super(...args);
        view.recordersMade += 1;
      }
    };
  }

  const watchFirstFrame = () => {
    if (view.firstRemoteFrameMs !== null || view.joinStartedAt === null) return;
    const video = [...document.querySelectorAll("#remotes video")].find((v) => v.videoWidth > 0);
    if (video) view.firstRemoteFrameMs = performance.now() - view.joinStartedAt;
  };
  setInterval(watchFirstFrame, 10);

  window.wakili = view;
  window.__WAKILI_DEVTOOLS__ = {
    attach(call) {
      view.call = call;
      call.on("state", (s) => {
        if (s.status === "joining" && view.joinStartedAt === null) view.joinStartedAt = performance.now();
      });
      call.on("admitted", () => (view.joinStartedAt = performance.now()));
      // A move announced during the call (`media:topology`), not the join's own answer.
      let joined = false;
      call.on("joined", () => (joined = true));
      call.on("topology", (topology) => {
        if (topology === "sfu" && joined) {
          view.switchedToSfuAt = performance.now();
          console.log(`switched to sfu at ${new Date().toISOString()} (t=${view.switchedToSfuAt.toFixed(1)} ms)`);
        }
      });
      call.on("iceRestart", () => (view.iceRestarts += 1));
      call.on("recordingCompleted", (recording) => (view.completedRecording = recording));
      const refresh = call.refreshToken.bind(call);
      call.refreshToken = async (token) => {
        await refresh(token);
        view.tokenRefreshes += 1;
      };
    },
  };
}

/** Adds the inspector to every page of `context`. */
export async function installInspector(context) {
  await context.addInitScript(inspector);
}
