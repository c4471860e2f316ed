/**
 * The other participants on screen: one tile per participant (video and a caption with their
 * name, role and media flags) and, through the SFU, a tile of its own for a screen share, right
 * after its sharer's. Tiles are kept and updated in place, so a video element keeps playing
 * across renders.
 */

import type { Consultation, ConsultationSnapshot, Participant } from "@wakili/sdk";
import { $ } from "./page.js";

function videoTile(kind: "participant" | "screen", participantId: string, label: string, muted: boolean): HTMLElement {
  const tile = document.createElement("figure");
  tile.className = kind === "screen" ? "tile screen" : "tile";
  if (kind === "screen") {
    tile.dataset.screenOf = participantId;
  } else {
    tile.dataset.participant = participantId;
  }
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = muted;
  video.setAttribute("aria-label", label);
  tile.append(video, document.createElement("figcaption"));
  return tile;
}

function play(tile: Element, stream: MediaStream | null): void {
  const video = tile.querySelector("video");
  if (video && stream && video.srcObject !== stream) {
    video.srcObject = stream;
  }
}

function caption(p: Participant): string {
  const flags: string[] = [];
  if (p.waiting) flags.push("waiting");
  if (p.reconnecting) flags.push("reconnecting…");
  if (!p.media.audio) flags.push("muted");
  if (!p.media.video) flags.push("camera off");
  if (p.media.screen) flags.push("sharing screen");
  return `${p.name} (${p.role})${flags.length ? ` — ${flags.join(", ")}` : ""}`;
}

/** Brings the tiles in line with the snapshot and the streams received. */
export function renderTiles(call: Consultation, snapshot: ConsultationSnapshot): void {
  const container = $("remotes");
  const present = new Set<string>();
  for (const p of snapshot.participants) {
    present.add(p.participantId);
    const selector = `[data-participant="${CSS.escape(p.participantId)}"]`;
    let tile = container.querySelector<HTMLElement>(selector);
    if (!tile) {
      tile = videoTile("participant", p.participantId, `${p.name}'s video`, false);
      container.append(tile);
    }
    const streams = call.remoteStreams(p.participantId);
    play(tile, streams.camera);
    tile.classList.toggle("speaking", snapshot.activeSpeaker === p.participantId);
    const text = tile.querySelector("figcaption");
    if (text) {
      text.textContent = caption(p);
    }
    tile.dataset.audio = String(p.media.audio);
    tile.dataset.video = String(p.media.video);
    tile.dataset.screen = String(p.media.screen);

    const screenSelector = `[data-screen-of="${CSS.escape(p.participantId)}"]`;
    let screenTile = container.querySelector<HTMLElement>(screenSelector);
    if (!streams.screen) {
      screenTile?.remove();
    } else {
      if (!screenTile) {
        screenTile = videoTile("screen", p.participantId, `${p.name}'s screen`, true);
        const text = screenTile.querySelector("figcaption");
        if (text) {
          text.textContent = `${p.name}'s screen`;
        }
        tile.after(screenTile);
      }
      play(screenTile, streams.screen);
    }
  }
  for (const tile of [...container.querySelectorAll<HTMLElement>(".tile")]) {
    const owner = tile.dataset.participant ?? tile.dataset.screenOf ?? "";
    if (!present.has(owner)) {
      tile.remove();
    }
  }
  $("self-video").classList.toggle(
    "speaking",
    snapshot.participantId !== null && snapshot.activeSpeaker === snapshot.participantId,
  );
}
