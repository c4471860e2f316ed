/**
 * The sign-in token of the call page, and where new ones come from.
 *
 * The platform opens `/c/{id}#token=JWT`: the fragment never reaches a server, and the page moves
 * the token into this tab's sessionStorage and out of the address bar and history at once.
 *
 * The server closes a connection whose token expires and warns it first (`auth:expiring`); the
 * SDK then asks `renew()` for a new one. New tokens come from:
 * - the platform page that opened this one: the page posts `{type: "wakili:token-request",
 *   consultationId}` to `window.opener`, which answers `{type: "wakili:token", token}`. The
 *   platform may also send `wakili:token` unasked at any time (`onPushed`). Only messages from
 *   the opener are read, and the server accepts only a token for the same user and role;
 * - in development (`wakili serve --dev`), the development token endpoint.
 */

const KEY = "wakili.token";

/** How long to wait for the opener's answer. */
const OPENER_TIMEOUT_MS = 10_000;

/** Who the development endpoint mints for. */
export interface DevIdentity {
  id: string;
  role: string;
  name: string;
}

export class TokenKeeper {
  readonly #consultationId: string;
  readonly #devLogin: boolean;
  #identity: DevIdentity | null = null;
  #waiting: ((token: string) => void)[] = [];
  #pushed: ((token: string) => void) | null = null;

  constructor(consultationId: string, devLogin: boolean) {
    this.#consultationId = consultationId;
    this.#devLogin = devLogin;
    const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromUrl) {
      sessionStorage.setItem(KEY, fromUrl);
      // Out of the address bar and history: it is a credential.
      history.replaceState(null, "", location.pathname + location.search);
    }
    window.addEventListener("message", (event) => this.#onMessage(event));
  }

  /** The token in use, if the page was given one. */
  current(): string | null {
    return sessionStorage.getItem(KEY);
  }

  /** Keeps `token` for the API and for the next reload. */
  use(token: string): void {
    sessionStorage.setItem(KEY, token);
  }

  /** Who this is (from `/me`): the development endpoint mints for them. */
  setIdentity(identity: DevIdentity): void {
    this.#identity = identity;
  }

  /** Called with a token the opener sends unasked. */
  onPushed(handler: (token: string) => void): void {
    this.#pushed = handler;
  }

  /** A new token, from the opener or in development from the server; null when none comes. */
  async renew(): Promise<string | null> {
    const token = (await this.#fromOpener()) ?? (await this.#fromDevEndpoint());
    if (token) {
      this.use(token);
    }
    return token;
  }

  #fromOpener(): Promise<string | null> {
    const opener = window.opener as Window | null;
    if (!opener) {
      return Promise.resolve(null);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), OPENER_TIMEOUT_MS);
      this.#waiting.push((token) => {
        clearTimeout(timer);
        resolve(token);
      });
      opener.postMessage({ type: "wakili:token-request", consultationId: this.#consultationId }, "*");
    });
  }

  async #fromDevEndpoint(): Promise<string | null> {
    const me = this.#identity;
    if (!this.#devLogin || !me) {
      return null;
    }
    const response = await fetch("/api/v1/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId: me.id, role: me.role, name: me.name }),
    });
    return response.ok ? ((await response.json()) as { token: string }).token : null;
  }

  #onMessage(event: MessageEvent): void {
    const opener = window.opener as Window | null;
    if (!opener || event.source !== opener) {
      return;
    }
    const { type, token } = (event.data ?? {}) as { type?: unknown; token?: unknown };
    if (type !== "wakili:token" || typeof token !== "string" || !token) {
      return;
    }
    const waiting = this.#waiting.splice(0);
    if (waiting.length) {
      waiting.forEach((done) => done(token));
    } else {
      this.use(token);
      this.#pushed?.(token);
    }
  }
}
