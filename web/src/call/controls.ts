/**
 * What the user does during the call: microphone, camera, screen share, recording (the lawyer),
 * leaving and ending, and answering a recording consent request.
 */

import type { Consultation } from "@wakili/sdk";
import { displayConstraints } from "./devices.js";
import { $, setStatus, showError } from "./page.js";

/** The call the controls act on (a page may make a new one when a resume fails). */
export type CurrentCall = () => Consultation | null;

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Wires the call controls and the consent dialog once; returns what a new call is attached
 * with (its consent requests open the dialog).
 */
export function wireControls(current: CurrentCall): (call: Consultation) => void {
  const act = (what: string, action: (call: Consultation) => Promise<unknown>) => () => {
    const call = current();
    if (call) {
      action(call).catch((error: unknown) => showError(`${what}: ${message(error)}`));
    }
  };
  $("mute").addEventListener(
    "click",
    act("Cannot change the microphone", (call) => call.setMedia({ audio: !call.snapshot.media.audio })),
  );
  $("camera").addEventListener(
    "click",
    act("Cannot change the camera", (call) => call.setMedia({ video: !call.snapshot.media.video })),
  );
  $("share").addEventListener("click", act("Screen sharing unavailable", toggleScreen));
  $("record").addEventListener("click", act("Recording", toggleRecording));
  $("leave").addEventListener("click", act("Cannot leave", (call) => call.leave()));
  $("end").addEventListener("click", act("Could not end the consultation", (call) => call.end()));

  let consentFor: string | undefined;
  const answer = (granted: boolean) => () => {
    $<HTMLDialogElement>("consent").close();
    act("Could not answer", (call) => call.consent(granted, consentFor))();
  };
  $("consent-allow").addEventListener("click", answer(true));
  $("consent-decline").addEventListener("click", answer(false));
  return (call) => {
    call.on("consentRequested", ({ recordingId }) => {
      consentFor = recordingId;
      const dialog = $<HTMLDialogElement>("consent");
      if (!dialog.open) {
        dialog.showModal();
      }
      $("consent-allow").focus();
    });
  };
}

async function toggleScreen(call: Consultation): Promise<void> {
  if (call.snapshot.media.screen) {
    await call.shareScreen(null);
    return;
  }
  const config = call.config;
  if (!config) {
    return;
  }
  const screen = await navigator.mediaDevices.getDisplayMedia(displayConstraints(config));
  await call.shareScreen(screen);
  $<HTMLVideoElement>("self-video").srcObject = screen;
}

/** Whether a start was asked for and consent is still awaited. */
let pending = false;

async function toggleRecording(call: Consultation): Promise<void> {
  const state = call.snapshot.recording;
  if (state.active || pending) {
    pending = false;
    await call.stopRecording();
    return;
  }
  const answer = await call.startRecording();
  pending = !answer.active;
  setStatus(answer.active ? "Recording" : "Waiting for consent to record…");
}

/** The recording stopped or started: nothing is pending any more. */
export function recordingSettled(): void {
  pending = false;
}
