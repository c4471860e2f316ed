/**
 * The REST client: `openapi-fetch` over the types generated from `docs/openapi.json`
 * (`src/generated/openapi.ts`). Every path, parameter, body and answer is typed by the server's
 * own description; nothing is written by hand but the authorization.
 *
 * ```ts
 * const api = createApiClient({ baseUrl: "https://wakili.example", token: () => jwt });
 * const consultation = await expectData(
 *   api.GET("/api/v1/consultations/{id}", { params: { path: { id } } }),
 *   "GET /api/v1/consultations/{id}",
 * );
 * ```
 */

import createClient, { type Client, type Middleware } from "openapi-fetch";

import { ApiError } from "./errors.js";
import type { components, operations, paths } from "./generated/openapi.js";

export type { components as ApiComponents, operations as ApiOperations, paths as ApiPaths };

/** Every schema of the REST API by name (`Consultation`, `WebrtcConfig`, …). */
export type ApiSchemas = components["schemas"];

/** The typed REST client: `api.GET(path, init)`, `api.POST(...)`, … */
export type ApiClient = Client<paths>;

/** Where a token comes from: a fixed one, or a function asked before every request. */
export type TokenSource = string | (() => string | Promise<string>);

/** How to reach the API. */
export interface ApiClientOptions {
  /** The server's origin, e.g. `https://wakili.example` (paths start with `/api/v1`). */
  baseUrl: string;
  /** The bearer token (the platform's JWT). Omit for the unauthenticated endpoints. */
  token?: TokenSource;
  /** `fetch` to use (tests, React Native polyfills); `globalThis.fetch` by default. */
  fetch?: (request: Request) => Promise<Response>;
}

/** Resolves a [`TokenSource`] to the token to use now. */
export async function currentToken(source: TokenSource): Promise<string> {
  return typeof source === "function" ? await source() : source;
}

/** Creates the typed REST client. */
export function createApiClient(options: ApiClientOptions): ApiClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const source = options.token;
  if (source !== undefined) {
    const auth: Middleware = {
      async onRequest({ request }) {
        request.headers.set("authorization", `Bearer ${await currentToken(source)}`);
        return request;
      },
    };
    client.use(auth);
  }
  return client;
}

/** What every `openapi-fetch` call resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The data of a successful call, or an [`ApiError`] with the status and the API's error code and
 * message. `operation` names the call in the error (`"GET /api/v1/me"`).
 */
export async function expectData<T>(call: Promise<FetchResult<T>>, operation: string): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) {
    return data as T;
  }
  const body = (error ?? {}) as { error?: { code?: unknown; message?: unknown } };
  const code = typeof body.error?.code === "string" ? body.error.code : `http_${response.status}`;
  const message = typeof body.error?.message === "string" ? body.error.message : response.statusText;
  throw new ApiError(operation, response.status, code, message);
}
