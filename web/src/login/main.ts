/**
 * The development sign-in page (`wakili serve --dev`): mints a token, books a consultation when
 * asked, and opens the call page with the token in the URL fragment (never sent to the server).
 */

import { createApiClient, expectData } from "@wakili/sdk";

const $ = <T extends HTMLElement = HTMLInputElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) {
    throw new Error(`the page has no #${id}`);
  }
  return element as T;
};

const value = (id: string) => $(id).value.trim();

$<HTMLFormElement>("login").addEventListener("submit", (event) => {
  event.preventDefault();
  $<HTMLElement>("error").hidden = true;
  signIn().catch((error: unknown) => {
    const shown = $<HTMLElement>("error");
    shown.textContent = error instanceof Error ? error.message : String(error);
    shown.hidden = false;
  });
});

async function signIn(): Promise<void> {
  const role = $<HTMLSelectElement>("role").value;
  const anonymous = createApiClient({ baseUrl: location.origin });
  const minted = await expectData(
    anonymous.POST("/api/v1/dev/token", { body: { userId: value("user-id"), role, name: value("name") || undefined } }),
    "sign in",
  );
  let consultation = value("consultation");
  if (!consultation) {
    if (role !== "lawyer") {
      throw new Error("give the consultation id (only lawyers book here)");
    }
    const api = createApiClient({ baseUrl: location.origin, token: minted.token });
    const booked = await expectData(
      api.POST("/api/v1/consultations", {
        body: {
          clientId: value("client-id"),
          scheduledAt: new Date(Date.now() + 60_000).toISOString(),
          durationMinutes: 30,
          title: "Development consultation",
        },
      }),
      "book",
    );
    consultation = booked.id;
  }
  $<HTMLElement>("links").textContent = `Consultation ${consultation}: the other party signs in here with this id.`;
  location.assign(`/c/${encodeURIComponent(consultation)}#token=${encodeURIComponent(minted.token)}`);
}
