/**
 * The call page's fixed parts: its elements by id, which section shows, the status line, the
 * error and the banner, and the settings the server writes into the page.
 */

/** What the server puts in `<meta name="wakili-config">` (crates/wakili-server routes/web.rs). */
export interface PageSettings {
  qualityReportSeconds: number;
  recordingChunkSeconds: number;
  /** `wakili serve --dev`: tokens can be renewed from the development endpoint. */
  devLogin: boolean;
}

/** The element with `id`, of the type the caller expects; a missing one is a page bug. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`the page has no #${id}`);
  }
  return element as T;
}

export function pageSettings(): PageSettings {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="wakili-config"]');
  return JSON.parse(meta?.content ?? "{}") as PageSettings;
}

/** The consultation of this page: `/c/{id}`. */
export function consultationIdFromPath(): string {
  return decodeURIComponent(location.pathname.split("/").pop() ?? "");
}

/** The page's sections; one shows at a time. */
export type Section = "preview" | "waiting" | "call" | "ended";

export function show(section: Section): void {
  for (const id of ["preview", "waiting", "call", "ended"] as const) {
    $(id).hidden = id !== section;
  }
}

export function setStatus(text: string): void {
  $("status").textContent = text;
}

export function showError(text: string): void {
  const error = $("error");
  error.textContent = text;
  error.hidden = !text;
}

export function showBanner(text: string | null): void {
  const banner = $("banner");
  banner.textContent = text ?? "";
  banner.hidden = text === null;
}

/** A toggle button's label and pressed state. */
export function setToggle(id: string, pressed: boolean, label: string): void {
  const button = $(id);
  button.setAttribute("aria-pressed", String(pressed));
  button.textContent = label;
}
