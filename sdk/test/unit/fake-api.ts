/**
 * A scripted REST server for `createApiClient({fetch})`: routes by method and path, records
 * every request.
 */

import { createApiClient, type ApiClient } from "../../src/rest.js";

export interface Recorded {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: ArrayBuffer;
}

export type Route = (request: Recorded) => { status: number; body?: unknown } | Promise<{ status: number; body?: unknown }>;

export class FakeApi {
  readonly requests: Recorded[] = [];
  readonly routes = new Map<string, Route>();

  /** Answers `METHOD /path` (path parameters as `*`). */
  route(key: string, route: Route): this {
    this.routes.set(key, route);
    return this;
  }

  client(token = "jwt"): ApiClient {
    return createApiClient({ baseUrl: "http://wakili.test/", token, fetch: (r) => this.fetch(r) });
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const recorded = {
      method: request.method,
      path: url.pathname,
      search: url.search,
      headers: request.headers,
      body: await request.arrayBuffer(),
    };
    this.requests.push(recorded);
    for (const [key, route] of this.routes) {
      const [method, pattern = ""] = key.split(" ");
      const re = new RegExp(`^${pattern.replaceAll("*", "[^/]+")}$`);
      if (method === request.method && re.test(url.pathname)) {
        const { status, body } = await route(recorded);
        return new Response(body === undefined ? null : JSON.stringify(body), {
          status,
          headers: { "content-type": "application/json" },
        });
      }
    }
    return new Response(JSON.stringify({ error: { code: "not_found", message: "no route" } }), { status: 404 });
  }
}

/** A `/webrtc/config` answer. */
export function webrtcConfig() {
  return {
    iceServers: [{ urls: ["stun:127.0.0.1:3478"] }],
    iceTransportPolicy: "all",
    qualityProfiles: {
      low: { width: 480, height: 360, frameRate: 15, maxBitrate: 300_000, constraints: {} },
      medium: { width: 1280, height: 720, frameRate: 30, maxBitrate: 1_000_000, constraints: {} },
    },
    defaultProfile: "medium",
    audio: {},
    simulcast: { enabled: false, encodings: [] },
    screenShare: { maxBitrate: 1_500_000, contentHint: "detail" },
    codecs: { video: ["video/VP8"], audio: ["audio/opus"] },
    mediaMode: "p2p",
    expiresAt: "2030-01-01T00:00:00Z",
  };
}
