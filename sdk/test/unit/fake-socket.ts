/**
 * A scripted stand-in for socket.io-client's `Socket`, so the signaling client's logic (acks,
 * queueing, resume) is tested without a server: the test decides what the "server" answers and
 * when the connection drops.
 */

import type { Socket } from "socket.io-client";

import type { SignalingOptions } from "../../src/signaling.js";

type Handler = (...args: unknown[]) => void;
type AckCallback = (error: Error | null, answer?: unknown) => void;

/** One event the client sent. */
export interface Sent {
  event: string;
  payload: unknown;
}

/** What the scripted server answers an event with (`undefined`: no answer, the ack times out). */
export type Responder = (event: string, payload: unknown) => unknown;

export class FakeSocket {
  connected = false;
  active = true;
  readonly sent: Sent[] = [];
  /** The CONNECT payloads the client sent (its `auth`). */
  readonly auths: unknown[] = [];
  respond: Responder = () => ({ ok: true });
  #handlers = new Map<string, Handler[]>();
  #any: Handler[] = [];
  #pending = new Set<AckCallback>();
  #auth: ((cb: (data: unknown) => void) => void) | null = null;
  /** What the client passed to socket.io-client's `io`. */
  options: Parameters<NonNullable<SignalingOptions["connect"]>>[1] | null = null;

  /** A `connect` option for `SignalingOptions` that hands out this socket. */
  factory(): NonNullable<SignalingOptions["connect"]> {
    return (_url, options) => {
      this.options = options;
      this.#auth = options.auth as (cb: (data: unknown) => void) => void;
      return this as unknown as Socket;
    };
  }

  on(event: string, handler: Handler): this {
    this.#handlers.set(event, [...(this.#handlers.get(event) ?? []), handler]);
    return this;
  }

  onAny(handler: Handler): this {
    this.#any.push(handler);
    return this;
  }

  offAny(): this {
    this.#any = [];
    return this;
  }

  removeAllListeners(): this {
    this.#handlers.clear();
    return this;
  }

  timeout(ms: number) {
    return {
      emit: (event: string, ...args: unknown[]) => {
        const ack = args.pop() as AckCallback;
        const payload = args.length ? args[0] : null;
        this.sent.push({ event, payload });
        if (!this.connected) {
          throw new Error(`the client emitted ${event} while disconnected`);
        }
        this.#pending.add(ack);
        const answer = this.respond(event, payload);
        if (answer === undefined) {
          setTimeout(() => {
            if (this.#pending.delete(ack)) {
              ack(new Error("operation has timed out"));
            }
          }, ms);
          return;
        }
        void Promise.resolve(answer).then((value) => {
          if (this.#pending.delete(ack)) {
            ack(null, value);
          }
        });
      },
    };
  }

  disconnect(): this {
    if (this.connected) {
      this.#lose("io client disconnect");
    }
    this.active = false;
    return this;
  }

  // ---------------------------------------------------------------- test controls

  /** The connection opens (CONNECT accepted); the client's auth is recorded first. */
  async open(): Promise<void> {
    await new Promise<void>((resolve) =>
      this.#auth
        ? this.#auth((data) => {
            this.auths.push(data);
            resolve();
          })
        : resolve(),
    );
    this.connected = true;
    this.#fire("connect");
  }

  /** The connection drops (socket.io-client would reconnect). */
  drop(reason = "transport close"): void {
    this.#lose(reason);
  }

  /** The server refuses the CONNECT. */
  refuse(message: string): void {
    this.active = false;
    this.#fire("connect_error", new Error(message));
  }

  /** The server sends an event. */
  push(event: string, payload: unknown): void {
    for (const handler of [...this.#any]) {
      handler(event, payload);
    }
  }

  /** The events sent so far, by name. */
  events(): string[] {
    return this.sent.map((s) => s.event);
  }

  #lose(reason: string): void {
    this.connected = false;
    for (const ack of [...this.#pending]) {
      this.#pending.delete(ack);
      ack(new Error("socket has been disconnected"));
    }
    this.#fire("disconnect", reason);
  }

  #fire(event: string, ...args: unknown[]): void {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      handler(...args);
    }
  }
}

/** Lets queued promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
