/**
 * Typed signaling over the official `socket.io-client` v4.
 *
 * - Every event name, payload and acknowledgement is typed from the protocol's schema
 *   (`protocol.ts`); `request` resolves with the ack's fields or throws a [`SignalingError`] with
 *   the server's code.
 * - Requests made while the connection is down, or while it is being resumed, are queued and sent
 *   in order once the connection is back and the participant has taken its place again.
 * - After a dropped connection, socket.io-client reconnects by itself; the client then sends
 *   `consultation:join {consultationId, resumeToken}` before anything queued, so the server sees the
 *   same participant (`resumed: true`) and the others never see it leave.
 */

import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";

import { Emitter } from "./emitter.js";
import { ConnectionRefusedError, SignalingError, type WakiliError } from "./errors.js";
import type {
  Ack,
  AckFields,
  ClientEventName,
  JoinAck,
  Payload,
  ServerEventMap,
  ServerEventName,
} from "./protocol.js";
import { currentToken, type TokenSource } from "./rest.js";

/** socket.io-client's listen map for the server's events. */
export type ServerToClientEvents = {
  [E in ServerEventName]: (payload: ServerEventMap[E]) => void;
};

/** socket.io-client's emit map for the client's events, each with its typed ack callback. */
export type ClientToServerEvents = {
  [E in ClientEventName]: Payload<E> extends null
    ? (ack: (answer: Ack<E>) => void) => void
    : (payload: Payload<E>, ack: (answer: Ack<E>) => void) => void;
};

/** A socket.io-client socket typed with Wakili's events. */
export type WakiliSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** The arguments after the event name: the payload, unless the event carries none. */
export type PayloadArgs<E extends ClientEventName> = Payload<E> extends null
  ? [payload?: null, options?: RequestOptions]
  : [payload: Payload<E>, options?: RequestOptions];

/** Per-request options. */
export interface RequestOptions {
  /** How long to wait for the acknowledgement once sent (default: the client's `ackTimeoutMs`). */
  timeoutMs?: number;
}

/** How to reach the server's signaling. */
export interface SignalingOptions {
  /** The server's origin, e.g. `https://wakili.example`. */
  url: string;
  /** The JWT sent in the CONNECT payload; a function is asked again on every reconnection. */
  token: TokenSource;
  /** How long to wait for an acknowledgement (default 10 s). */
  ackTimeoutMs?: number;
  /**
   * The consultation this connection is for. Sent as the `consultation` query parameter of
   * every Socket.IO request, so a load balancer can put all of a consultation's participants
   * on one node (`deploy/haproxy/haproxy.cfg` hashes on it): their signals then never cross
   * nodes. The server does not rely on it; `consultation:join` names the consultation.
   */
  consultationId?: string;
  /** Passed to socket.io-client (transports, reconnection delays, …). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  /** Creates the socket; socket.io-client's `io` by default (tests pass a fake). */
  connect?: (url: string, options: Partial<ManagerOptions & SocketOptions>) => Socket;
}

/** The connection's state. */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** What happens to the connection, as events. */
export interface SignalingLifecycle {
  /** Connected (`reconnected`: after a drop); queued requests follow once resumed. */
  connected: { reconnected: boolean };
  /** The connection dropped; `willReconnect` unless the server or the app closed it. */
  disconnected: { reason: string; willReconnect: boolean };
  /** After a reconnection: the consultation was joined again with the resume token. */
  resumed: JoinAck;
  /** After a reconnection: joining again failed; queued requests were rejected with this. */
  resumeFailed: SignalingError;
  /** The server refused the connection (bad or expired token, too many connections). */
  refused: ConnectionRefusedError;
  /** The state changed. */
  state: ConnectionState;
  /** A request sent with `send` (no one awaiting it) failed. */
  error: WakiliError;
}

interface Pending {
  event: ClientEventName;
  payload: unknown;
  timeoutMs: number;
  resolve: (fields: unknown) => void;
  reject: (error: SignalingError) => void;
}

const DEFAULT_ACK_TIMEOUT_MS = 10_000;

/** One signaling connection to a Wakili server. */
export class SignalingClient {
  /** Connection events (connected, disconnected, resumed, refused, state, error). */
  readonly lifecycle = new Emitter<SignalingLifecycle>();

  readonly #server = new Emitter<ServerEventMap>();
  readonly #options: SignalingOptions;
  readonly #ackTimeoutMs: number;
  #token: TokenSource;
  #socket: Socket | null = null;
  #state: ConnectionState = "idle";
  #everConnected = false;
  /** Whether requests go out now, rather than into the queue. */
  #ready = false;
  readonly #queue: Pending[] = [];
  #session: { consultationId: string; resumeToken: string } | null = null;

  constructor(options: SignalingOptions) {
    this.#options = options;
    this.#token = options.token;
    this.#ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The resume token of the consultation joined, if any. */
  get resumeToken(): string | null {
    return this.#session?.resumeToken ?? null;
  }

  /** How many requests wait for the connection. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The underlying socket.io-client socket (for diagnostics; do not emit on it directly). */
  get socket(): WakiliSocket | null {
    return this.#socket;
  }

  /** Listens to a server event; returns a function that stops listening. */
  on<E extends ServerEventName>(event: E, handler: (payload: ServerEventMap[E]) => void): () => void {
    return this.#server.on(event, handler);
  }

  /** Opens the connection; resolves once connected, rejects when the server refuses it. */
  connect(): Promise<void> {
    if (this.#socket) {
      throw new Error("connect() was already called");
    }
    const make = this.#options.connect ?? io;
    const { consultationId, socketOptions } = this.#options;
    const socket = make(this.#options.url, {
      forceNew: true,
      ...socketOptions,
      ...(consultationId === undefined ? {} : { query: { ...socketOptions?.query, consultation: consultationId } }),
      auth: (cb: (data: object) => void) => {
        currentToken(this.#token).then(
          (token) => cb({ token }),
          () => cb({}),
        );
      },
    });
    this.#socket = socket;
    this.#setState("connecting");
    socket.onAny((event: string, payload: unknown) => {
      this.#server.emit(event as ServerEventName, payload as never);
    });
    socket.on("connect", () => this.#onConnect());
    socket.on("disconnect", (reason: string) => this.#onDisconnect(reason));
    socket.on("connect_error", (error: Error) => {
      // A refusal by the server's middleware ends the attempts (socket.active is false then);
      // a transport error is retried by socket.io-client itself.
      if (!socket.active) {
        const refused = new ConnectionRefusedError(error.message);
        this.lifecycle.emit("refused", refused);
        this.#shutDown(new SignalingError("connect", refused.code, refused.message));
      }
    });
    this.on("session:closed", ({ reason, message }) => {
      // The server closes this connection right after: no resume on it.
      this.#shutDown(new SignalingError("session", "closed", `${reason}: ${message}`));
    });
    return new Promise((resolve, reject) => {
      const offConnected = this.lifecycle.once("connected", () => {
        offRefused();
        resolve();
      });
      const offRefused = this.lifecycle.once("refused", (error) => {
        offConnected();
        reject(error);
      });
    });
  }

  /**
   * Sends `event` and resolves with its acknowledgement's fields; throws a [`SignalingError`]
   * with the server's code when refused. Queued while the connection is down or resuming.
   */
  request<E extends ClientEventName>(event: E, ...args: PayloadArgs<E>): Promise<AckFields<E>> {
    const [payload, options] = args;
    return new Promise<AckFields<E>>((resolve, reject) => {
      const pending: Pending = {
        event,
        payload: payload ?? null,
        timeoutMs: options?.timeoutMs ?? this.#ackTimeoutMs,
        resolve: resolve as (fields: unknown) => void,
        reject,
      };
      if (this.#state === "closed") {
        reject(new SignalingError(event, "closed", "the signaling client is closed"));
      } else if (this.#ready) {
        this.#send(pending);
      } else {
        this.#queue.push(pending);
      }
    });
  }

  /** Like `request`, without waiting: a failure goes to `lifecycle`'s `error`. */
  send<E extends ClientEventName>(event: E, ...args: PayloadArgs<E>): void {
    this.request(event, ...args).catch((error: SignalingError) => this.lifecycle.emit("error", error));
  }

  /**
   * Joins a consultation (or resumes, with an earlier `resumeToken`); remembers the resume token
   * so that a dropped connection resumes by itself.
   */
  async join(consultationId: string, resumeToken?: string | null): Promise<JoinAck> {
    const ack = await this.request("consultation:join", {
      consultationId,
      ...(resumeToken ? { resumeToken } : {}),
    });
    this.#session = { consultationId, resumeToken: ack.resumeToken };
    return ack;
  }

  /** Leaves the consultation (the connection stays open). */
  async leave(): Promise<void> {
    this.#session = null;
    await this.request("consultation:leave");
  }

  /**
   * Hands the server a new token for the same user (`auth:refresh`); it is also used for later
   * reconnections. Resolves with the new token's expiry.
   */
  async refreshToken(token: string): Promise<AckFields<"auth:refresh">> {
    const ack = await this.request("auth:refresh", { token });
    this.#token = token;
    return ack;
  }

  /** Closes for good: no reconnection; queued and unanswered requests fail with `closed`. */
  close(): void {
    this.#shutDown(new SignalingError("close", "closed", "the signaling client was closed"));
  }

  // ---------------------------------------------------------------- internals

  #setState(state: ConnectionState): void {
    if (this.#state !== state) {
      this.#state = state;
      this.lifecycle.emit("state", state);
    }
  }

  #onConnect(): void {
    const reconnected = this.#everConnected;
    this.#everConnected = true;
    this.#setState("connected");
    this.lifecycle.emit("connected", { reconnected });
    const session = this.#session;
    if (!reconnected || !session) {
      this.#ready = true;
      this.#flush();
      return;
    }
    this.#rejoin(session);
  }

  /** Joins again with the resume token, before anything queued goes out. */
  #rejoin(session: { consultationId: string; resumeToken: string }): void {
    const socket = this.#socket;
    this.#send({
      event: "consultation:join",
      payload: { consultationId: session.consultationId, resumeToken: session.resumeToken },
      timeoutMs: this.#ackTimeoutMs,
      resolve: (fields) => {
        const ack = fields as JoinAck;
        this.#session = { consultationId: session.consultationId, resumeToken: ack.resumeToken };
        this.lifecycle.emit("resumed", ack);
        this.#ready = true;
        this.#flush();
      },
      reject: (error) => {
        if (socket !== this.#socket || !socket?.connected || this.#state === "closed") {
          return; // dropped again: the next connect tries again
        }
        if (error.code === "timeout" || error.code === "unavailable" || error.code === "rate_limited") {
          this.#rejoin(session); // transient: try again on this connection
          return;
        }
        this.#session = null;
        this.lifecycle.emit("resumeFailed", error);
        this.#rejectQueued(error);
        this.#ready = true;
      },
    });
  }

  #onDisconnect(reason: string): void {
    this.#ready = false;
    if (this.#state === "closed") {
      return;
    }
    // "io server disconnect" / "io client disconnect": closed on purpose, no reconnection.
    const willReconnect = reason !== "io server disconnect" && reason !== "io client disconnect";
    this.lifecycle.emit("disconnected", { reason, willReconnect });
    if (willReconnect) {
      this.#setState("reconnecting");
    } else {
      this.#shutDown(new SignalingError("disconnect", "closed", `the server closed the connection (${reason})`));
    }
  }

  #flush(): void {
    while (this.#ready && this.#queue.length > 0) {
      const next = this.#queue.shift();
      if (next) {
        this.#send(next);
      }
    }
  }

  #send(pending: Pending): void {
    const socket = this.#socket;
    if (!socket) {
      this.#queue.push(pending);
      return;
    }
    const done = (error: Error | null, answer?: Ack<ClientEventName>) => {
      if (error) {
        const disconnected = error.message.includes("disconnected");
        pending.reject(
          new SignalingError(
            pending.event,
            disconnected ? "disconnected" : "timeout",
            disconnected
              ? "the connection dropped before the acknowledgement"
              : `no acknowledgement within ${pending.timeoutMs} ms`,
            { cause: error },
          ),
        );
      } else if (answer && answer.ok === true) {
        const { ok: _ok, ...fields } = answer;
        pending.resolve(fields);
      } else {
        const refusal = answer && answer.ok === false ? answer.error : { code: "bad_request", message: "malformed ack" };
        pending.reject(new SignalingError(pending.event, refusal.code, refusal.message));
      }
    };
    const emitter = socket.timeout(pending.timeoutMs) as unknown as {
      emit: (event: string, ...args: unknown[]) => void;
    };
    if (pending.payload === null) {
      emitter.emit(pending.event, done);
    } else {
      emitter.emit(pending.event, pending.payload, done);
    }
  }

  #rejectQueued(error: SignalingError): void {
    for (const pending of this.#queue.splice(0)) {
      pending.reject(new SignalingError(pending.event, error.code, error.message, { cause: error }));
    }
  }

  #shutDown(error: SignalingError): void {
    if (this.#state === "closed") {
      return;
    }
    this.#ready = false;
    this.#setState("closed");
    this.#rejectQueued(error);
    const socket = this.#socket;
    socket?.disconnect();
    socket?.removeAllListeners();
    socket?.offAny();
  }
}
