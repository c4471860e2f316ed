// The call page: /c/{consultationId}#token=JWT (the token may also come from the dev login page).
//
// Over 600 lines because it is the page's one state machine (preview, join, p2p media, the move
// to the SFU, recording, quality, token renewal); the TypeScript SDK (issue 19) will take the
// protocol out of it.
//
// Flow: preview (camera, microphone, device choice) → join over Socket.IO → waiting room or call.
// Topology "p2p": one RTCPeerConnection per other participant; for each pair the participant
// with the smaller id makes the offers, so offers never collide. Topology "sfu" (the join ack or
// a later `media:topology`): one connection to the server's SFU (sfu.js); the p2p connections
// are closed and the local tracks carry on. A reload resumes the same participant with the
// resume token kept in sessionStorage, then (p2p) tells the others to start a fresh connection
// or (sfu) publishes again.

import { Socket } from "./sio.js";
import { applyProfile, cameraConstraints, displayConstraints, readStats } from "./media.js";
import { RecordingUploader } from "./recorder.js";
import { SfuSession } from "./sfu.js";

const $ = (id) => document.getElementById(id);
const settings = JSON.parse(document.querySelector('meta[name="wakili-config"]').content);
const consultationId = decodeURIComponent(location.pathname.split("/").pop());
const params = new URLSearchParams(location.search);
const forceRelay = params.get("relay") === "1";

/** What the page knows; also read by the browser tests (window.wakili). */
const state = {
  consultationId,
  token: null,
  me: null,
  config: null,
  consultation: null,
  socket: null,
  participantId: null,
  role: null,
  joined: false,
  waiting: false,
  participants: new Map(),
  peers: new Map(),
  pendingCandidates: new Map(),
  topology: "p2p",
  sfu: null,
  switchedToSfuAt: null,
  activeSpeaker: null,
  local: null,
  screen: null,
  media: { audio: true, video: true, screen: false },
  profile: null,
  recording: { active: false, recordingId: null },
  uploader: null,
  lastQuality: null,
  recommendations: [],
  joinStartedAt: 0,
  firstRemoteFrameMs: null,
  resumed: false,
  iceRestarts: 0,
  completedRecording: null,
  ended: false,
  tokenRefreshes: 0,
};
window.wakili = state;
// For the browser tests: what arrives from each participant through the SFU (sfu.js `inbound`),
// and the simulcast layer to receive of every video (`media:layer-preference`; null: the
// server's choice).
state.inboundStats = () => state.sfu?.inbound() ?? Promise.resolve({});
state.setLayerPreference = (rid) => state.sfu?.setLayerPreference(rid);

// ---------------------------------------------------------------- start-up

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem("wakili.token", fromUrl);
    // Out of the address bar and history: it is a credential.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("wakili.token");
}

function resumeKey() {
  return `wakili.resume.${consultationId}`;
}

async function api(path, init = {}) {
  const headers = new Headers(init.headers ?? {});
  headers.set("authorization", `Bearer ${state.token}`);
  return fetch(path, { ...init, headers });
}

async function apiJson(path) {
  const response = await api(path);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body?.error?.message ?? `${path}: ${response.status}`);
  }
  return body;
}

async function main() {
  state.token = takeToken();
  if (!state.token) {
    showError("No sign-in token. Open the link the platform gave you (…#token=…), or sign in at /login in development.");
    setStatus("Not signed in");
    return;
  }
  try {
    let roster;
    [state.me, state.consultation, state.config, roster] = await Promise.all([
      apiJson("/api/v1/me"),
      apiJson(`/api/v1/consultations/${encodeURIComponent(consultationId)}`),
      apiJson(`/api/v1/webrtc/config?consultationId=${encodeURIComponent(consultationId)}`),
      apiJson(`/api/v1/consultations/${encodeURIComponent(consultationId)}/participants`),
    ]);
    // My part in this consultation: a party, a guest, or (not listed) staff.
    state.role = roster.find((p) => p.userId === state.me.id)?.role ?? state.me.role;
  } catch (error) {
    showError(error.message);
    setStatus("Cannot open this consultation");
    return;
  }
  state.profile = state.config.defaultProfile;
  $("title").textContent = state.consultation.title || "Consultation";
  $("record").hidden = state.role !== "lawyer";
  $("end").hidden = !["lawyer", "admin"].includes(state.role);
  wireControls();
  if (state.role === "observer") {
    // An observer only listens and watches: no camera, no microphone, nothing to share.
    state.media = { audio: false, video: false, screen: false };
    for (const id of ["mute", "camera", "share"]) {
      $(id).hidden = true;
    }
  } else {
    try {
      await startCamera({});
    } catch (error) {
      showError(`Camera or microphone unavailable: ${error.message}`);
    }
  }
  await listDevices();
  const saved = JSON.parse(sessionStorage.getItem(resumeKey()) ?? "null");
  if (saved?.resumeToken) {
    // A reload mid-call: go straight back in as the same participant.
    await join(saved.resumeToken);
  } else {
    show("preview");
    setStatus(state.role === "observer" ? "Ready to join as an observer: you see and hear the call" : "Ready to join");
    $("join").focus();
  }
}

// ---------------------------------------------------------------- local media

async function startCamera(devices) {
  const stream = await navigator.mediaDevices.getUserMedia(cameraConstraints(state.config, state.profile, devices));
  const old = state.local;
  state.local = stream;
  stream.getAudioTracks().forEach((t) => (t.enabled = state.media.audio));
  stream.getVideoTracks().forEach((t) => (t.enabled = state.media.video));
  $("preview-video").srcObject = stream;
  $("self-video").srcObject = state.screen ?? stream;
  for (const peer of state.peers.values()) {
    for (const sender of peer.pc.getSenders()) {
      const track = sender.track?.kind === "audio" ? stream.getAudioTracks()[0] : null;
      if (track) {
        await sender.replaceTrack(track);
      } else if (sender.track?.kind === "video" && !state.screen) {
        await sender.replaceTrack(stream.getVideoTracks()[0]);
      }
    }
  }
  await state.sfu?.replaceTrack("audio", stream.getAudioTracks()[0]);
  await state.sfu?.replaceTrack("camera", stream.getVideoTracks()[0]);
  old?.getTracks().forEach((t) => t.stop());
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    select.replaceChildren();
    devices
      .filter((d) => d.kind === kind)
      .forEach((d, i) => {
        const option = new Option(d.label || `${kind} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === current;
        select.add(option);
      });
  };
  fill($("camera-select"), "videoinput", state.local?.getVideoTracks()[0]?.getSettings().deviceId);
  fill($("microphone-select"), "audioinput", state.local?.getAudioTracks()[0]?.getSettings().deviceId);
}

// ---------------------------------------------------------------- signaling

function connect() {
  return new Promise((resolve, reject) => {
    const socket = new Socket(location.origin, () => ({ token: state.token }));
    state.socket = socket;
    let first = true;
    socket.on("connect", async () => {
      if (first) {
        first = false;
        resolve();
        return;
      }
      // Reconnected: take our place back.
      if (state.joined && !state.ended) {
        const saved = JSON.parse(sessionStorage.getItem(resumeKey()) ?? "null");
        await join(saved?.resumeToken);
      }
    });
    socket.on("connect_error", (error) => {
      showError(`Signaling refused: ${error.message}`);
      reject(error);
    });
    socket.on("disconnect", () => {
      if (state.joined && !state.ended) {
        showBanner("Connection lost. Reconnecting…");
      }
    });
    socket.on("participant:joined", (p) => {
      state.participants.set(p.participantId, p);
      if (!p.waiting && !state.waiting && state.topology === "p2p") {
        connectTo(p);
      }
      renderParticipants();
    });
    socket.on("participant:admitted", ({ participantId }) => {
      const p = state.participants.get(participantId);
      if (p) {
        p.waiting = false;
        if (!state.waiting && state.topology === "p2p") {
          connectTo(p);
        }
      }
      renderParticipants();
    });
    socket.on("consultation:admitted", () => {
      state.waiting = false;
      state.joinStartedAt = performance.now(); // time to first frame counts from admission
      enterCall();
      if (state.topology === "sfu") {
        startSfu();
        return;
      }
      for (const p of state.participants.values()) {
        if (!p.waiting) {
          connectTo(p);
        }
      }
    });
    socket.on("participant:left", ({ participantId }) => {
      state.participants.delete(participantId);
      closePeer(participantId);
      renderParticipants();
    });
    socket.on("participant:reconnecting", ({ participantId }) => {
      const p = state.participants.get(participantId);
      if (p) {
        p.reconnecting = true;
      }
      renderParticipants();
    });
    socket.on("participant:resumed", ({ participantId }) => {
      const p = state.participants.get(participantId);
      if (p) {
        p.reconnecting = false;
      }
      renderParticipants();
    });
    socket.on("participant:media", ({ participantId, audio, video, screen }) => {
      const p = state.participants.get(participantId);
      if (p) {
        p.media = { audio, video, screen };
      }
      renderParticipants();
    });
    socket.on("signal", (message) => onSignal(message).catch((e) => console.error("signal", e)));
    socket.on("media:topology", ({ topology }) => useTopology(topology, true));
    socket.on("media:offer", ({ sdp }) => {
      state.sfu?.offer(sdp).catch((e) => console.error("media:offer", e));
    });
    socket.on("media:layer", (layer) => state.sfu?.layerChanged(layer));
    socket.on("speaker:active", ({ participantId }) => {
      state.activeSpeaker = participantId;
      renderParticipants();
    });
    socket.on("quality:recommendation", (r) => applyRecommendation(r));
    socket.on("quality-profile:changed", ({ profile }) => applyRecommendation({ profile, reason: "changed by the lawyer" }));
    socket.on("recording:consent-request", ({ recordingId }) => askConsent(recordingId));
    socket.on("recording:state", (s) => onRecordingState(s));
    socket.on("recording:consent-refused", () => setStatus("The client declined the recording"));
    socket.on("consultation:ended", () => finish("The consultation was ended."));
    socket.on("auth:expiring", () => renewToken().catch((e) => console.error("auth:refresh", e)));
    socket.on("session:closed", ({ reason, message }) => {
      state.ended = true;
      socket.close();
      finish(reason === "replaced" ? "You joined from another tab or device." : message);
    });
    socket.open();
  });
}

// ---------------------------------------------------------------- token renewal
//
// The server closes a connection whose token expires, and warns it first with `auth:expiring`
// (docs/signaling.md). The page then gets a new token and hands it over with `auth:refresh`, so
// the call goes on. Where new tokens come from:
// - the platform page that opened this one: the page posts `{type: "wakili:token-request",
//   consultationId}` to `window.opener`, which answers `{type: "wakili:token", token}`. The
//   platform may also send `wakili:token` unasked at any time. Only messages from the opener are
//   read, and the server accepts only a token for the same user and role;
// - in development (`wakili serve --dev`), the development token endpoint.

/** Waits for a token sent by the opener (the platform), for up to `timeoutMs`. */
function tokenFromOpener(timeoutMs = 10000) {
  if (!window.opener) {
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    pendingTokenRequests.push((token) => {
      clearTimeout(timer);
      resolve(token);
    });
    window.opener.postMessage({ type: "wakili:token-request", consultationId }, "*");
  });
}

const pendingTokenRequests = [];

window.addEventListener("message", (event) => {
  if (!window.opener || event.source !== window.opener) {
    return;
  }
  const { type, token } = event.data ?? {};
  if (type !== "wakili:token" || typeof token !== "string" || !token) {
    return;
  }
  const waiting = pendingTokenRequests.splice(0);
  if (waiting.length) {
    waiting.forEach((done) => done(token));
  } else {
    // Sent unasked: use it now.
    useToken(token).catch((e) => console.error("auth:refresh", e));
  }
});

async function devToken() {
  if (!settings.devLogin || !state.me) {
    return null;
  }
  const response = await fetch("/api/v1/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId: state.me.id, role: state.me.role, name: state.me.name }),
  });
  return response.ok ? (await response.json()).token : null;
}

/** Gets a new token and gives it to the connection; tells the user when none comes. */
async function renewToken() {
  const token = (await tokenFromOpener()) ?? (await devToken());
  if (!token) {
    showBanner("Your sign-in expires soon. Reopen the consultation from the platform to stay in the call.");
    return;
  }
  await useToken(token);
}

async function useToken(token) {
  if (state.socket?.connected) {
    const answer = await state.socket.request("auth:refresh", { token });
    if (!answer?.ok) {
      showError(`Could not renew the sign-in: ${answer?.error?.message ?? "no answer"}`);
      return;
    }
    state.tokenRefreshes += 1;
  }
  // Also for the API and the next reconnection.
  state.token = token;
  sessionStorage.setItem("wakili.token", token);
}

async function join(resumeToken) {
  if (!state.socket) {
    setStatus("Connecting…");
    try {
      await connect();
    } catch {
      return;
    }
  }
  state.joinStartedAt = state.joinStartedAt || performance.now();
  const answer = await state.socket.request("consultation:join", {
    consultationId,
    ...(resumeToken ? { resumeToken } : {}),
  });
  if (!answer?.ok) {
    if (resumeToken && answer?.error?.code !== "consultation_closed") {
      // The grace period is over: join as new.
      sessionStorage.removeItem(resumeKey());
      return join(undefined);
    }
    showError(answer?.error?.message ?? "could not join");
    if (answer?.error?.code === "consultation_closed") {
      sessionStorage.removeItem(resumeKey());
      finish("This consultation is over.");
    }
    return;
  }
  const reloaded = resumeToken && state.peers.size === 0 && !state.joined;
  state.participantId = answer.participantId;
  state.joined = true;
  state.resumed = Boolean(answer.resumed);
  state.waiting = Boolean(answer.waiting);
  useTopology(answer.topology ?? "p2p", false);
  sessionStorage.setItem(resumeKey(), JSON.stringify({ resumeToken: answer.resumeToken, participantId: answer.participantId }));
  state.participants.clear();
  for (const p of answer.participants) {
    if (p.participantId !== state.participantId) {
      state.participants.set(p.participantId, p);
    } else {
      state.role = p.role;
    }
  }
  hideBanner();
  if (answer.qualityProfile && answer.qualityProfile !== state.profile) {
    applyRecommendation({ profile: answer.qualityProfile, reason: "the consultation's profile" });
  }
  onRecordingState(answer.recording ?? { active: false });
  if (state.waiting) {
    show("waiting");
    setStatus("In the waiting room");
    return;
  }
  enterCall();
  if (state.topology === "sfu") {
    startSfu();
    renderParticipants();
    sendMediaState();
    return;
  }
  for (const p of state.participants.values()) {
    if (p.waiting) {
      continue;
    }
    if (reloaded || !state.peers.has(p.participantId)) {
      // After a reload the other side still holds the old connection: ask for a fresh one.
      if (reloaded) {
        state.socket.emit("signal", { to: p.participantId, type: "restart", payload: { fresh: true } });
      }
      connectTo(p);
    }
  }
  renderParticipants();
  sendMediaState();
}

function enterCall() {
  show("call");
  setStatus(state.participants.size ? "In the call" : "Waiting for the other party");
  $("self-video").srcObject = state.screen ?? state.local;
  startQualityReports();
}

// ---------------------------------------------------------------- topology and the SFU

/**
 * How media travels now: the join ack's `topology`, then `media:topology` (`announced`). On the
 * move to the SFU the peer connections close and the local tracks are published to the SFU.
 */
function useTopology(topology, announced) {
  if (topology === state.topology) {
    return;
  }
  state.topology = topology;
  if (topology === "sfu") {
    if (announced) {
      state.switchedToSfuAt = performance.now();
      console.log(`switched to sfu at ${new Date().toISOString()} (t=${state.switchedToSfuAt.toFixed(1)} ms)`);
    }
    for (const id of [...state.peers.keys()]) {
      closePeer(id);
    }
    state.pendingCandidates.clear();
    if (state.joined && !state.waiting && !state.ended) {
      startSfu();
    }
  } else {
    // Not during a call (auto never moves back), but a new call may start peer to peer.
    stopSfu();
    if (state.joined && !state.waiting && !state.ended) {
      for (const p of state.participants.values()) {
        if (!p.waiting) {
          connectTo(p);
        }
      }
    }
  }
  renderParticipants();
}

/** Publishes the local tracks to the SFU, unless a session is already up. */
function startSfu() {
  if (state.sfu && !state.sfu.closed) {
    return state.sfu.queue;
  }
  const session = new SfuSession({
    socket: state.socket,
    config: state.config,
    forceRelay,
    onRemoteChange: () => renderParticipants(),
    onFailed: () => {
      // The media connection is lost for good: publish again (the server replaces the session).
      if (state.sfu === session) {
        console.warn("SFU connection failed: publishing again");
        restartSfu();
      }
    },
  });
  state.sfu = session;
  const published = session.publish({
    audio: state.local?.getAudioTracks()[0],
    camera: state.local?.getVideoTracks()[0],
    screen: state.screen?.getVideoTracks()[0],
    stream: state.local,
  });
  published
    .then(() => {
      const profile = state.config.qualityProfiles[state.profile];
      if (profile && state.profile !== state.config.defaultProfile) {
        return session.applyProfile(profile);
      }
    })
    .catch((error) => {
      if (state.sfu !== session || state.ended) {
        return;
      }
      console.error("media:publish", error);
      session.close();
      state.sfu = null;
      if (error.code !== "wrong_topology" && error.code !== "waiting") {
        showError(`Cannot connect the media: ${error.message}`);
        setTimeout(() => state.topology === "sfu" && !state.sfu && !state.ended && startSfu(), 2000);
      }
    });
  return published;
}

function stopSfu() {
  state.sfu?.close();
  state.sfu = null;
}

/** A new SFU session with the current local tracks (the screen share started or stopped). */
function restartSfu() {
  stopSfu();
  return startSfu();
}

/** The stream shown on `participantId`'s tile. */
function remoteStream(participantId) {
  if (state.topology === "sfu") {
    return state.sfu?.cameraStream(participantId) ?? null;
  }
  return state.peers.get(participantId)?.stream ?? null;
}

// ---------------------------------------------------------------- peer connections

function isOfferer(otherId) {
  return state.participantId < otherId;
}

function connectTo(p) {
  if (p.participantId === state.participantId || state.peers.has(p.participantId)) {
    return;
  }
  if (isOfferer(p.participantId)) {
    const peer = createPeer(p.participantId);
    addLocalTracks(peer);
  }
  // Otherwise the other side offers; the connection is made when its offer arrives.
}

function createPeer(id) {
  const pc = new RTCPeerConnection({
    iceServers: state.config.iceServers,
    iceTransportPolicy: forceRelay ? "relay" : state.config.iceTransportPolicy,
  });
  const peer = { id, pc, pendingCandidates: [], stream: new MediaStream(), stats: null };
  state.peers.set(id, peer);
  pc.onicecandidate = ({ candidate }) => {
    if (candidate) {
      state.socket.emit("signal", { to: id, type: "candidate", payload: candidate.toJSON() });
    }
  };
  pc.ontrack = ({ track }) => {
    peer.stream.addTrack(track);
    renderParticipants();
  };
  pc.onnegotiationneeded = async () => {
    if (!isOfferer(id)) {
      return;
    }
    try {
      await pc.setLocalDescription();
      state.socket.emit("signal", { to: id, type: "offer", payload: pc.localDescription.toJSON() });
    } catch (error) {
      console.error("offer failed", error);
    }
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed") {
      restartIce(peer);
    }
    renderParticipants();
  };
  return peer;
}

function addLocalTracks(peer) {
  const audio = state.local?.getAudioTracks()[0];
  const video = state.screen?.getVideoTracks()[0] ?? state.local?.getVideoTracks()[0];
  const stream = state.local ?? new MediaStream();
  if (audio) {
    peer.pc.addTrack(audio, stream);
  }
  if (video) {
    peer.pc.addTrack(video, stream);
    const sender = peer.pc.getSenders().find((s) => s.track === video);
    const profile = state.config.qualityProfiles[state.profile];
    if (profile && sender) {
      applyProfile(sender, profile).catch(() => {});
    }
  }
}

function restartIce(peer) {
  state.iceRestarts += 1;
  if (isOfferer(peer.id)) {
    peer.pc.restartIce();
  } else {
    state.socket.emit("signal", { to: peer.id, type: "restart", payload: { fresh: false } });
  }
}

function closePeer(id) {
  const peer = state.peers.get(id);
  if (peer) {
    peer.pc.close();
    state.peers.delete(id);
  }
}

async function onSignal({ from, type, payload }) {
  if (state.topology === "sfu") {
    return; // late signals of the peer connections the SFU replaced
  }
  if (type === "restart") {
    if (payload?.fresh) {
      closePeer(from);
      const p = state.participants.get(from);
      if (p) {
        connectTo(p);
      }
    } else if (state.peers.has(from) && isOfferer(from)) {
      state.iceRestarts += 1;
      state.peers.get(from).pc.restartIce();
    }
    return;
  }
  let peer = state.peers.get(from);
  if (type === "offer") {
    const fresh = !peer;
    peer = peer ?? createPeer(from);
    await peer.pc.setRemoteDescription(payload);
    if (fresh) {
      addLocalTracks(peer);
    }
    await peer.pc.setLocalDescription();
    state.socket.emit("signal", { to: from, type: "answer", payload: peer.pc.localDescription.toJSON() });
    await flushCandidates(peer);
  } else if (type === "answer" && peer) {
    await peer.pc.setRemoteDescription(payload);
    await flushCandidates(peer);
  } else if (type === "candidate") {
    if (!peer) {
      // Arrived before the offer it belongs to.
      const early = state.pendingCandidates.get(from) ?? [];
      early.push(payload);
      state.pendingCandidates.set(from, early);
    } else if (!peer.pc.remoteDescription) {
      peer.pendingCandidates.push(payload);
    } else {
      await peer.pc.addIceCandidate(payload).catch((e) => console.warn("candidate refused", e));
    }
  }
}

async function flushCandidates(peer) {
  const early = state.pendingCandidates.get(peer.id) ?? [];
  state.pendingCandidates.delete(peer.id);
  for (const candidate of [...early, ...peer.pendingCandidates]) {
    await peer.pc.addIceCandidate(candidate).catch((e) => console.warn("candidate refused", e));
  }
  peer.pendingCandidates = [];
}

// ---------------------------------------------------------------- rendering

function renderParticipants() {
  const container = $("remotes");
  const seen = new Set();
  for (const p of state.participants.values()) {
    seen.add(p.participantId);
    let tile = container.querySelector(`[data-participant="${CSS.escape(p.participantId)}"]`);
    if (!tile) {
      tile = document.createElement("figure");
      tile.className = "tile";
      tile.dataset.participant = p.participantId;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.setAttribute("aria-label", `${p.name}'s video`);
      const caption = document.createElement("figcaption");
      tile.append(video, caption);
      container.append(tile);
    }
    const video = tile.querySelector("video");
    const stream = remoteStream(p.participantId);
    if (stream && video.srcObject !== stream) {
      video.srcObject = stream;
      watchFirstFrame(video);
    }
    tile.classList.toggle("speaking", state.activeSpeaker === p.participantId);
    const flags = [];
    if (p.waiting) flags.push("waiting");
    if (p.reconnecting) flags.push("reconnecting…");
    if (p.media && !p.media.audio) flags.push("muted");
    if (p.media && !p.media.video) flags.push("camera off");
    if (p.media?.screen) flags.push("sharing screen");
    tile.querySelector("figcaption").textContent = `${p.name} (${p.role})${flags.length ? " — " + flags.join(", ") : ""}`;
    tile.dataset.audio = String(p.media?.audio ?? true);
    tile.dataset.video = String(p.media?.video ?? true);
    tile.dataset.screen = String(p.media?.screen ?? false);
  }
  renderScreens(container, seen);
  for (const tile of [...container.children]) {
    if (!seen.has(tile.dataset.participant ?? tile.dataset.screenOf)) {
      tile.remove();
    }
  }
  $("self-video").classList.toggle("speaking", Boolean(state.participantId) && state.activeSpeaker === state.participantId);
  if (state.joined && !state.waiting && !state.ended) {
    setStatus(state.participants.size ? "In the call" : "Waiting for the other party");
  }
}

/** Through the SFU a screen share is a track of its own: a tile of its own, after its sharer's. */
function renderScreens(container, present) {
  for (const participantId of present) {
    const stream = state.topology === "sfu" ? state.sfu?.screenStream(participantId) : null;
    let tile = container.querySelector(`[data-screen-of="${CSS.escape(participantId)}"]`);
    if (!stream) {
      tile?.remove();
      continue;
    }
    if (!tile) {
      const p = state.participants.get(participantId);
      tile = document.createElement("figure");
      tile.className = "tile screen";
      tile.dataset.screenOf = participantId;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      video.setAttribute("aria-label", `${p?.name ?? "Someone"}'s screen`);
      const caption = document.createElement("figcaption");
      caption.textContent = `${p?.name ?? "Someone"}'s screen`;
      tile.append(video, caption);
      const sharer = container.querySelector(`[data-participant="${CSS.escape(participantId)}"]`);
      sharer ? sharer.after(tile) : container.append(tile);
    }
    const video = tile.querySelector("video");
    if (video.srcObject !== stream) {
      video.srcObject = stream;
    }
  }
}

function watchFirstFrame(video) {
  const done = () => {
    if (state.firstRemoteFrameMs === null && video.videoWidth > 0) {
      state.firstRemoteFrameMs = performance.now() - state.joinStartedAt;
    }
  };
  if (video.requestVideoFrameCallback) {
    video.requestVideoFrameCallback(done);
  } else {
    video.addEventListener("resize", done, { once: true });
  }
}

function show(section) {
  for (const id of ["preview", "waiting", "call", "ended"]) {
    $(id).hidden = id !== section;
  }
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function showBanner(text) {
  $("banner").textContent = text;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

// ---------------------------------------------------------------- controls

function wireControls() {
  $("join").addEventListener("click", async () => {
    $("join").disabled = true;
    state.joinStartedAt = performance.now();
    await join(undefined);
    $("join").disabled = false;
  });
  const changeDevice = async () => {
    try {
      await startCamera({ camera: $("camera-select").value, microphone: $("microphone-select").value });
    } catch (error) {
      showError(`Cannot switch device: ${error.message}`);
    }
  };
  $("camera-select").addEventListener("change", changeDevice);
  $("microphone-select").addEventListener("change", changeDevice);
  $("mute").addEventListener("click", () => {
    state.media.audio = !state.media.audio;
    state.local?.getAudioTracks().forEach((t) => (t.enabled = state.media.audio));
    $("mute").setAttribute("aria-pressed", String(!state.media.audio));
    $("mute").textContent = state.media.audio ? "Mute" : "Unmute";
    sendMediaState();
  });
  $("camera").addEventListener("click", () => {
    state.media.video = !state.media.video;
    state.local?.getVideoTracks().forEach((t) => (t.enabled = state.media.video));
    $("camera").setAttribute("aria-pressed", String(!state.media.video));
    $("camera").textContent = state.media.video ? "Camera off" : "Camera on";
    sendMediaState();
  });
  $("share").addEventListener("click", () => (state.screen ? stopSharing() : startSharing()));
  $("record").addEventListener("click", toggleRecording);
  $("leave").addEventListener("click", () => {
    state.socket?.emit("consultation:leave");
    finish("You left the consultation.");
  });
  $("end").addEventListener("click", async () => {
    const answer = await state.socket?.request("consultation:end");
    if (answer && !answer.ok) {
      showError(answer.error?.message ?? "could not end the consultation");
    }
  });
  $("consent-allow").addEventListener("click", () => answerConsent(true));
  $("consent-decline").addEventListener("click", () => answerConsent(false));
}

function sendMediaState() {
  if (state.joined && state.socket?.connected) {
    state.socket.emit("media:state", { ...state.media });
  }
}

async function startSharing() {
  let screen;
  try {
    screen = await navigator.mediaDevices.getDisplayMedia(displayConstraints(state.config));
  } catch (error) {
    showError(`Screen sharing unavailable: ${error.message}`);
    return;
  }
  const track = screen.getVideoTracks()[0];
  track.contentHint = state.config.screenShare?.contentHint ?? "detail";
  state.screen = screen;
  track.addEventListener("ended", stopSharing);
  if (state.topology === "sfu" && state.sfu) {
    // The share is a track of its own through the SFU: publish again with it.
    await restartSfu().catch(() => {});
  }
  await replaceVideo(track, state.config.screenShare?.maxBitrate);
  $("self-video").srcObject = screen;
  state.media.screen = true;
  $("share").setAttribute("aria-pressed", "true");
  $("share").textContent = "Stop sharing";
  sendMediaState();
}

async function stopSharing() {
  if (!state.screen) {
    return;
  }
  state.screen.getTracks().forEach((t) => t.stop());
  state.screen = null;
  const camera = state.local?.getVideoTracks()[0];
  if (state.topology === "sfu" && state.sfu) {
    await restartSfu().catch(() => {});
  }
  if (camera) {
    await replaceVideo(camera, state.config.qualityProfiles[state.profile]?.maxBitrate);
  }
  $("self-video").srcObject = state.local;
  state.media.screen = false;
  $("share").setAttribute("aria-pressed", "false");
  $("share").textContent = "Share screen";
  sendMediaState();
}

// The outgoing video track is swapped in place: no renegotiation, the other side keeps its video element.
async function replaceVideo(track, maxBitrate) {
  for (const peer of state.peers.values()) {
    const sender = peer.pc.getTransceivers().find((t) => t.receiver.track.kind === "video")?.sender;
    if (sender) {
      await sender.replaceTrack(track);
      if (maxBitrate) {
        const params = sender.getParameters();
        for (const encoding of params.encodings ?? []) {
          encoding.maxBitrate = maxBitrate;
        }
        await sender.setParameters(params).catch(() => {});
      }
    }
  }
}

// ---------------------------------------------------------------- quality

let qualityTimer = null;

function startQualityReports() {
  if (qualityTimer) {
    return;
  }
  qualityTimer = setInterval(reportQuality, settings.qualityReportSeconds * 1000);
}

async function reportQuality() {
  // Through the SFU its one connection's figures; peer to peer the first connected peer's.
  const peer =
    state.topology === "sfu"
      ? state.sfu?.pc.connectionState === "connected"
        ? state.sfu
        : null
      : [...state.peers.values()].find((p) => p.pc.connectionState === "connected");
  if (!peer || !state.socket?.connected) {
    return;
  }
  const stats = await readStats(peer.pc, peer.stats);
  const first = peer.stats === null;
  peer.stats = stats;
  if (first) {
    return; // rates need two readings
  }
  const answer = await state.socket.request("quality:report", stats.report).catch(() => null);
  if (answer?.ok) {
    state.lastQuality = { ...stats.report, score: answer.score, level: answer.level };
    const indicator = $("quality");
    indicator.hidden = false;
    indicator.dataset.level = answer.level;
    indicator.textContent = `Connection: ${answer.level} (${Number(answer.score).toFixed(1)}) · ${stats.report.rttMs} ms · ${stats.report.candidateType || "?"}`;
  }
}

async function applyRecommendation({ profile, reason }) {
  const view = state.config.qualityProfiles[profile];
  if (!view) {
    return;
  }
  state.profile = profile;
  state.recommendations.push({ profile, reason });
  if (!state.screen) {
    for (const peer of state.peers.values()) {
      const sender = peer.pc.getSenders().find((s) => s.track?.kind === "video");
      await applyProfile(sender, view).catch((e) => console.warn("setParameters failed", e));
    }
    await state.sfu?.applyProfile(view).catch((e) => console.warn("setParameters failed", e));
  }
  setStatus(`Video quality set to ${profile} (${reason})`);
}

// ---------------------------------------------------------------- recording

async function toggleRecording() {
  if (state.recording.active || state.recording.pending) {
    const answer = await state.socket.request("recording:stop");
    if (!answer?.ok) {
      showError(answer?.error?.message ?? "could not stop recording");
    }
    return;
  }
  const answer = await state.socket.request("recording:start");
  if (!answer?.ok) {
    showError(answer?.error?.message ?? "could not start recording");
    return;
  }
  state.recording.pending = !answer.active;
  setStatus(answer.active ? "Recording" : "Waiting for consent to record…");
}

function askConsent(recordingId) {
  state.consentFor = recordingId;
  const dialog = $("consent");
  if (!dialog.open) {
    dialog.showModal();
  }
  $("consent-allow").focus();
}

function answerConsent(granted) {
  $("consent").close();
  state.socket.emit("recording:consent", { granted, recordingId: state.consentFor });
}

async function onRecordingState(s) {
  const wasActive = state.recording.active;
  state.recording = {
    active: Boolean(s.active),
    recordingId: s.recordingId ?? null,
    reason: s.reason,
    server: Boolean(s.server),
  };
  $("recording-indicator").hidden = !s.active;
  $("record").setAttribute("aria-pressed", String(Boolean(s.active)));
  $("record").textContent = s.active ? "Stop recording" : "Record";
  // A server recording (through the SFU) needs nothing from this browser.
  if (state.me?.role !== "lawyer" || (s.server && !state.uploader)) {
    if (s.server) {
      const note = $("recording-progress");
      note.hidden = !s.active;
      note.textContent = "Recorded by the server: every participant's camera, microphone and screen.";
    }
    return;
  }
  if (s.active && !state.uploader) {
    await startUploading();
  } else if (s.active && state.uploader) {
    state.uploader.resume();
  } else if (!s.active && state.uploader && s.reason === "consent_pending") {
    state.uploader.pause();
  } else if (!s.active && wasActive && state.uploader) {
    const uploader = state.uploader;
    state.uploader = null;
    try {
      state.completedRecording = await uploader.stop();
      $("recording-progress").textContent = `Recording saved: ${uploader.seq} chunks.`;
    } catch (error) {
      showError(`Recording upload failed: ${error.message}`);
    }
  }
}

async function startUploading() {
  const stream = recordedStream();
  state.uploader = new RecordingUploader({
    fetch: api,
    consultationId,
    stream,
    chunkSeconds: settings.recordingChunkSeconds,
    onProgress: ({ uploaded, pending, failed }) => {
      const note = $("recording-progress");
      note.hidden = false;
      note.textContent = failed ? `Upload problem: ${failed}` : `Recording: ${uploaded} chunks uploaded, ${pending} waiting.`;
    },
  });
  try {
    await state.uploader.start();
  } catch (error) {
    state.uploader = null;
    showError(`Cannot record: ${error.message}`);
  }
}

// The other party's video with every voice mixed; our own video when nobody else is there.
function recordedStream() {
  const remotes = [...state.participants.keys()].map(remoteStream).filter(Boolean);
  const remote = remotes.find((stream) => stream.getVideoTracks().length);
  const video = remote?.getVideoTracks()[0] ?? state.local?.getVideoTracks()[0];
  const context = new AudioContext();
  const mix = context.createMediaStreamDestination();
  for (const stream of [state.local, ...remotes]) {
    if (stream?.getAudioTracks().length) {
      context.createMediaStreamSource(stream).connect(mix);
    }
  }
  return new MediaStream([video, ...mix.stream.getAudioTracks()].filter(Boolean));
}

// ---------------------------------------------------------------- the end

function finish(reason) {
  if (state.ended && !$("ended").hidden) {
    return;
  }
  state.ended = true;
  clearInterval(qualityTimer);
  if (state.uploader) {
    const uploader = state.uploader;
    state.uploader = null;
    uploader.stop().then((r) => (state.completedRecording = r)).catch((e) => showError(e.message));
  }
  for (const id of [...state.peers.keys()]) {
    closePeer(id);
  }
  stopSfu();
  state.local?.getTracks().forEach((t) => t.stop());
  state.screen?.getTracks().forEach((t) => t.stop());
  state.socket?.close();
  sessionStorage.removeItem(resumeKey());
  hideBanner();
  $("ended-reason").textContent = reason;
  show("ended");
  setStatus("Ended");
}

main().catch((error) => {
  console.error(error);
  showError(error.message);
});
