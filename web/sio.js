// A small Socket.IO v5 client (Engine.IO v4 over WebSocket only) for the web client.
//
// Why not the official socket.io-client: the server must run without a front-end build, and we do
// not commit third-party bundles. The subset the call page needs is small: connect with an `auth`
// payload, events, acknowledgements, heartbeats and reconnecting with backoff. The official
// client is what the protocol tests use (tests/node), so the server speaks the real protocol.

const ENGINE_OPEN = "0";
const ENGINE_CLOSE = "1";
const ENGINE_PING = "2";
const ENGINE_PONG = "3";
const ENGINE_MESSAGE = "4";

const SIO_CONNECT = "0";
const SIO_DISCONNECT = "1";
const SIO_EVENT = "2";
const SIO_ACK = "3";
const SIO_CONNECT_ERROR = "4";

/** A Socket.IO connection to the default namespace that reconnects until closed. */
export class Socket {
  /**
   * @param {string} base - the server's origin, e.g. `location.origin`
   * @param {() => object} auth - the CONNECT payload, asked for on every (re)connection
   */
  constructor(base, auth) {
    const url = new URL("/socket.io/", base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = "EIO=4&transport=websocket";
    this.url = url.toString();
    this.auth = auth;
    this.handlers = new Map();
    this.acks = new Map();
    this.nextAck = 0;
    this.connected = false;
    this.closed = false;
    this.attempt = 0;
    this.ws = null;
    this.heartbeat = null;
  }

  /** Registers `fn` for server event `event` (also `connect`, `disconnect`, `connect_error`). */
  on(event, fn) {
    if (!this.handlers.has(event)) {
      this.handlers.set(event, []);
    }
    this.handlers.get(event).push(fn);
    return this;
  }

  /** Opens the connection (and keeps it open until `close`). */
  open() {
    this.closed = false;
    this.dial();
    return this;
  }

  /** Sends an event without waiting for an answer. */
  emit(event, data) {
    this.sendPacket(SIO_EVENT, "", data === undefined ? [event] : [event, data]);
  }

  /** Sends an event and resolves with the server's acknowledgement. */
  request(event, data, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      if (!this.connected) {
        reject(new Error("not connected"));
        return;
      }
      const id = this.nextAck++;
      const timer = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`${event}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.acks.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.sendPacket(SIO_EVENT, String(id), data === undefined ? [event] : [event, data]);
    });
  }

  /** Closes for good: no reconnection. */
  close() {
    this.closed = true;
    if (this.ws) {
      if (this.connected) {
        this.ws.send(ENGINE_MESSAGE + SIO_DISCONNECT);
      }
      this.ws.close();
    }
  }

  dial() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onmessage = (message) => this.receive(String(message.data));
    ws.onclose = () => this.lost(ws, "transport close");
    ws.onerror = () => ws.close();
  }

  lost(ws, reason) {
    if (ws !== this.ws) {
      return;
    }
    clearTimeout(this.heartbeat);
    const wasConnected = this.connected;
    this.connected = false;
    for (const [id, done] of this.acks) {
      this.acks.delete(id);
      done({ ok: false, error: { code: "disconnected", message: "the connection dropped" } });
    }
    if (wasConnected) {
      this.fire("disconnect", reason);
    }
    if (!this.closed) {
      // 0.5 s, 1 s, 2 s, … up to 5 s, with jitter so a restarted server is not hit at once.
      const delay = Math.min(5000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
      this.attempt += 1;
      setTimeout(() => this.closed || this.dial(), delay);
    }
  }

  receive(text) {
    const kind = text[0];
    if (kind === ENGINE_OPEN) {
      const open = JSON.parse(text.slice(1));
      this.pingDeadline = open.pingInterval + open.pingTimeout;
      this.watchHeartbeat();
      this.ws.send(ENGINE_MESSAGE + SIO_CONNECT + JSON.stringify(this.auth()));
    } else if (kind === ENGINE_PING) {
      this.ws.send(ENGINE_PONG);
      this.watchHeartbeat();
    } else if (kind === ENGINE_CLOSE) {
      this.ws.close();
    } else if (kind === ENGINE_MESSAGE) {
      this.receivePacket(text.slice(1));
    }
  }

  // No ping within the interval + timeout: the connection is dead even if the socket is not.
  watchHeartbeat() {
    clearTimeout(this.heartbeat);
    const ws = this.ws;
    this.heartbeat = setTimeout(() => ws.close(), this.pingDeadline + 1000);
  }

  receivePacket(text) {
    const type = text[0];
    let rest = text.slice(1);
    if (rest.startsWith("/")) {
      rest = rest.slice(rest.indexOf(",") + 1);
    }
    const digits = /^\d*/.exec(rest)[0];
    const body = rest.slice(digits.length);
    const data = body ? JSON.parse(body) : undefined;
    if (type === SIO_CONNECT) {
      this.connected = true;
      this.attempt = 0;
      this.fire("connect");
    } else if (type === SIO_CONNECT_ERROR) {
      // Refused (e.g. an expired token): retrying with the same credentials would not help.
      this.closed = true;
      this.fire("connect_error", new Error(data?.message ?? "refused"));
      this.ws.close();
    } else if (type === SIO_EVENT && Array.isArray(data)) {
      this.fire(data[0], data[1]);
    } else if (type === SIO_ACK && digits) {
      const done = this.acks.get(Number(digits));
      if (done) {
        this.acks.delete(Number(digits));
        done(Array.isArray(data) ? data[0] : data);
      }
    } else if (type === SIO_DISCONNECT) {
      this.ws.close();
    }
  }

  sendPacket(type, ackId, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(ENGINE_MESSAGE + type + ackId + JSON.stringify(data));
    }
  }

  fire(event, data) {
    for (const fn of this.handlers.get(event) ?? []) {
      try {
        fn(data);
      } catch (error) {
        console.error(`handler for ${event} failed`, error);
      }
    }
  }
}
