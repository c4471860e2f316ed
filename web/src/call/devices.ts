/**
 * The camera, the microphone and the screen: capture constraints from the server's
 * `/webrtc/config`, and the device pickers.
 */

import type { ApiSchemas } from "@wakili/sdk";
import { $ } from "./page.js";

type WebrtcConfig = ApiSchemas["WebrtcConfig"];

/** The devices the user picked (empty: the browser's choice). */
export interface DeviceChoice {
  camera?: string;
  microphone?: string;
}

/** getUserMedia constraints for a quality profile and the chosen devices. */
export function cameraConstraints(config: WebrtcConfig, profileName: string | null, devices: DeviceChoice): MediaStreamConstraints {
  const profile = config.qualityProfiles[profileName ?? ""] ?? config.qualityProfiles[config.defaultProfile];
  const video: MediaTrackConstraints = profile ? { ...(profile.constraints as MediaTrackConstraints) } : {};
  if (devices.camera) {
    video.deviceId = { exact: devices.camera };
  }
  const audio: MediaTrackConstraints = { ...(config.audio.constraints as MediaTrackConstraints) };
  if (devices.microphone) {
    audio.deviceId = { exact: devices.microphone };
  }
  return { audio, video };
}

/** getDisplayMedia options from the server's `screenShare`. */
export function displayConstraints(config: WebrtcConfig): DisplayMediaStreamOptions {
  return (config.screenShare.constraints as DisplayMediaStreamOptions | undefined) ?? { video: true, audio: false };
}

/** Fills the camera and microphone pickers, selecting what `stream` uses. */
export async function listDevices(stream: MediaStream | null): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, current: string | undefined) => {
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => {
          const option = new Option(d.label || `${kind} ${i + 1}`, d.deviceId);
          option.selected = d.deviceId === current;
          return option;
        }),
    );
  };
  fill($<HTMLSelectElement>("camera-select"), "videoinput", stream?.getVideoTracks()[0]?.getSettings().deviceId);
  fill($<HTMLSelectElement>("microphone-select"), "audioinput", stream?.getAudioTracks()[0]?.getSettings().deviceId);
}

/** What the pickers say now. */
export function chosenDevices(): DeviceChoice {
  return {
    camera: $<HTMLSelectElement>("camera-select").value || undefined,
    microphone: $<HTMLSelectElement>("microphone-select").value || undefined,
  };
}
