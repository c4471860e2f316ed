/**
 * The call page: `/c/{consultationId}#token=JWT` (the token may also come from the development
 * sign-in page). Everything about the call itself (signaling, peer-to-peer or SFU media, quality,
 * recording, resume) is the SDK's `Consultation`; this page is its view.
 *
 * Flow: preview (camera, microphone, device choice) → join → waiting room or call → end. A reload
 * mid-call resumes the same participant with the resume token kept in sessionStorage.
 */

import {
  type ApiSchemas,
  Consultation,
  type ConsultationSnapshot,
  createApiClient,
  expectData,
  SignalingError,
} from "@wakili/sdk";
import { recordingSettled, wireControls } from "./controls.js";
import { cameraConstraints, chosenDevices, type DeviceChoice, listDevices } from "./devices.js";
import { announce } from "./devtools.js";
import {
  $,
  consultationIdFromPath,
  pageSettings,
  setStatus,
  setToggle,
  show,
  showBanner,
  showError,
} from "./page.js";
import { renderTiles } from "./tiles.js";
import { TokenKeeper } from "./token.js";

const settings = pageSettings();
const consultationId = consultationIdFromPath();
const forceRelay = new URLSearchParams(location.search).get("relay") === "1";
const resumeKey = `wakili.resume.${consultationId}`;
const tokens = new TokenKeeper(consultationId, settings.devLogin);

/** What the page holds besides the call. */
const page = {
  config: null as ApiSchemas["WebrtcConfig"] | null,
  role: "client" as string,
  local: null as MediaStream | null,
  call: null as Consultation | null,
  attachControls: (_call: Consultation) => {},
  /** The status line's subject last rendered (to keep other messages until it changes). */
  shown: "",
  /** The call's status last rendered. */
  status: "idle" as ConsultationSnapshot["status"],
};

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

async function main(): Promise<void> {
  if (!tokens.current()) {
    showError("No sign-in token. Open the link the platform gave you (…#token=…), or sign in at /login in development.");
    setStatus("Not signed in");
    return;
  }
  const api = createApiClient({ baseUrl: location.origin, token: () => tokens.current() ?? "" });
  let title: string;
  try {
    const id = { params: { path: { id: consultationId } } };
    const [me, consultation, config, roster] = await Promise.all([
      expectData(api.GET("/api/v1/me"), "who am I"),
      expectData(api.GET("/api/v1/consultations/{id}", id), "the consultation"),
      expectData(api.GET("/api/v1/webrtc/config", { params: { query: { consultationId } } }), "the media configuration"),
      expectData(api.GET("/api/v1/consultations/{id}/participants", id), "the participants"),
    ]);
    tokens.setIdentity({ id: me.id, role: me.role, name: me.name });
    // My part in this consultation: a party, a guest, or (not listed) staff.
    page.role = roster.find((p) => p.userId === me.id)?.role ?? me.role;
    page.config = config;
    title = consultation.title || "Consultation";
  } catch (error) {
    showError(message(error));
    setStatus("Cannot open this consultation");
    return;
  }
  $("title").textContent = title;
  $("record").hidden = page.role !== "lawyer";
  $("end").hidden = !["lawyer", "admin"].includes(page.role);
  page.attachControls = wireControls(() => page.call);
  wirePreview();
  tokens.onPushed((token) => {
    page.call?.refreshToken(token).catch((error: unknown) => showError(`Could not renew the sign-in: ${message(error)}`));
  });

  if (page.role === "observer") {
    // An observer only listens and watches: no camera, no microphone, nothing to share.
    for (const id of ["mute", "camera", "share"]) {
      $(id).hidden = true;
    }
  } else {
    try {
      await startCamera({});
    } catch (error) {
      showError(`Camera or microphone unavailable: ${message(error)}`);
    }
  }
  await listDevices(page.local);

  const saved = JSON.parse(sessionStorage.getItem(resumeKey) ?? "null") as { resumeToken?: string } | null;
  if (saved?.resumeToken) {
    // A reload mid-call: straight back in as the same participant.
    await join(saved.resumeToken);
  } else {
    show("preview");
    setStatus(page.role === "observer" ? "Ready to join as an observer: you see and hear the call" : "Ready to join");
    $("join").focus();
  }
}

// ---------------------------------------------------------------- preview and devices

async function startCamera(devices: DeviceChoice): Promise<void> {
  const config = page.config;
  if (!config) {
    return;
  }
  const profile = page.call?.snapshot.profile ?? config.defaultProfile;
  const stream = await navigator.mediaDevices.getUserMedia(cameraConstraints(config, profile, devices));
  const old = page.local;
  page.local = stream;
  $<HTMLVideoElement>("preview-video").srcObject = stream;
  if (page.call) {
    await page.call.setLocalStream(stream); // stops the old tracks
    if (!page.call.snapshot.media.screen) {
      $<HTMLVideoElement>("self-video").srcObject = stream;
    }
  } else {
    old?.getTracks().forEach((t) => t.stop());
  }
}

function wirePreview(): void {
  $("join").addEventListener("click", () => {
    const button = $<HTMLButtonElement>("join");
    button.disabled = true;
    void join(null).finally(() => (button.disabled = false));
  });
  const changeDevice = () => {
    startCamera(chosenDevices()).catch((error: unknown) => showError(`Cannot switch device: ${message(error)}`));
  };
  $("camera-select").addEventListener("change", changeDevice);
  $("microphone-select").addEventListener("change", changeDevice);
}

// ---------------------------------------------------------------- the call

async function join(resumeToken: string | null): Promise<void> {
  setStatus("Connecting…");
  const call = new Consultation({
    url: location.origin,
    consultationId,
    token: () => tokens.current() ?? "",
    renewToken: async () => {
      const token = await tokens.renew();
      if (!token) {
        showBanner("Your sign-in expires soon. Reopen the consultation from the platform to stay in the call.");
      }
      return token;
    },
    resumeToken,
    localStream: page.role === "observer" ? null : page.local,
    forceRelay,
    qualityReportIntervalMs: settings.qualityReportSeconds * 1000,
    recordingChunkSeconds: settings.recordingChunkSeconds,
  });
  page.call = call;
  watch(call);
  page.attachControls(call);
  announce(call);
  try {
    await call.join();
  } catch (error) {
    call.close();
    page.call = null;
    const code = error instanceof SignalingError ? error.code : "";
    if (code === "consultation_closed") {
      sessionStorage.removeItem(resumeKey);
      showEnded("This consultation is over.");
      return;
    }
    if (resumeToken) {
      // The grace period is over: join as someone new.
      sessionStorage.removeItem(resumeKey);
      return join(null);
    }
    showError(message(error));
    setStatus("Could not join");
  }
}

function watch(call: Consultation): void {
  call.on("state", (snapshot) => render(call, snapshot));
  call.on("remoteStreams", () => renderTiles(call, call.snapshot));
  call.on("reconnecting", () => showBanner("Connection lost. Reconnecting…"));
  call.on("resumed", () => showBanner(null));
  call.on("recommendation", ({ profile, reason }) => setStatus(`Video quality set to ${profile} (${reason})`));
  call.on("consentRefused", () => setStatus("Someone declined the recording"));
  call.on("quality", (q) => {
    const indicator = $("quality");
    indicator.hidden = false;
    indicator.dataset.level = q.level;
    indicator.textContent = `Connection: ${q.level} (${q.score.toFixed(1)}) · ${q.rttMs} ms · ${q.candidateType || "?"}`;
  });
  call.on("recordingProgress", ({ uploaded, pending, failed }) => {
    note(failed ? `Upload problem: ${failed}` : `Recording: ${uploaded} chunks uploaded, ${pending} waiting.`);
  });
  call.on("recording", (r) => {
    if (r.active || r.reason !== "consent_pending") {
      recordingSettled();
    }
    if (r.active) {
      setStatus("Recording");
    } else if (r.reason === "consent_pending") {
      setStatus("Waiting for consent to record…");
    } else {
      page.shown = ""; // back to the call's own status
      render(call, call.snapshot);
    }
  });
  call.on("recordingCompleted", (r) => note(`Recording saved: ${r.chunkCount} chunks, ${(r.fileSizeBytes / 1e6).toFixed(1)} MB.`));
  call.on("error", (error) => {
    console.warn("wakili:", error);
    showError(error.message);
  });
  call.on("ended", ({ reason, message }) => {
    sessionStorage.removeItem(resumeKey);
    page.local?.getTracks().forEach((t) => t.stop());
    const why: Record<string, string> = {
      left: "You left the consultation.",
      ended: "The consultation was ended.",
      replaced: "You joined from another tab or device.",
    };
    showEnded(why[reason] ?? message);
  });
}

function render(call: Consultation, s: ConsultationSnapshot): void {
  const previous = page.status;
  page.status = s.status;
  if (s.resumeToken && s.participantId) {
    sessionStorage.setItem(resumeKey, JSON.stringify({ resumeToken: s.resumeToken, participantId: s.participantId }));
  }
  if (s.status === "waiting") {
    show("waiting");
    status("waiting", "In the waiting room");
  } else if (s.status === "in_call") {
    show("call");
    if (previous === "reconnecting") {
      showBanner(null); // back after a drop (other banners, like an expiring sign-in, stay)
    }
    const self = $<HTMLVideoElement>("self-video");
    if (!s.media.screen && self.srcObject !== page.local) {
      self.srcObject = page.local;
    }
    const others = s.participants.filter((p) => !p.waiting).length;
    status(`call:${others > 0}`, others ? "In the call" : "Waiting for the other party");
  }
  renderTiles(call, s);
  renderMedia(s);
  renderRecording(s);
}

/** Sets the status line when what it is about changed, leaving other messages until then. */
function status(subject: string, text: string): void {
  if (page.shown !== subject) {
    page.shown = subject;
    setStatus(text);
  }
}

function renderMedia(s: ConsultationSnapshot): void {
  setToggle("mute", !s.media.audio, s.media.audio ? "Mute" : "Unmute");
  setToggle("camera", !s.media.video, s.media.video ? "Camera off" : "Camera on");
  setToggle("share", s.media.screen, s.media.screen ? "Stop sharing" : "Share screen");
}

function renderRecording(s: ConsultationSnapshot): void {
  const { active, server } = s.recording;
  $("recording-indicator").hidden = !active;
  setToggle("record", active, active ? "Stop recording" : "Record");
  if (server) {
    // Recorded by the server (through the SFU): nothing is asked of this browser.
    const progress = $("recording-progress");
    progress.hidden = !active;
    progress.textContent = "Recorded by the server: every participant's camera, microphone and screen.";
  }
}

function note(text: string): void {
  const progress = $("recording-progress");
  progress.hidden = false;
  progress.textContent = text;
}

function showEnded(reason: string): void {
  showBanner(null);
  $("ended-reason").textContent = reason;
  show("ended");
  setStatus("Ended");
  page.shown = "ended";
}

main().catch((error: unknown) => {
  console.error(error);
  showError(message(error));
});
