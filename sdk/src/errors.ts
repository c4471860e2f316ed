/**
 * The SDK's errors: every failure is a `WakiliError` with a `code` an app can branch on.
 */

/** The error codes of a refused signaling event (docs/signaling.md, "Acknowledgements"). */
export const SERVER_ERROR_CODES = [
  "bad_request",
  "payload_too_large",
  "unknown_event",
  "not_joined",
  "already_joined",
  "forbidden",
  "not_found",
  "waiting",
  "invalid_state",
  "consultation_closed",
  "rate_limited",
  "unauthorized",
  "token_expired",
  "unavailable",
  "wrong_topology",
  "sfu_disabled",
  "media_refused",
  "room_full",
  "listen_only",
] as const;

/** A code the server may refuse an event with. */
export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

/**
 * Why a signaling request failed: the server's refusal code, or one of the SDK's own:
 * - `timeout`: no acknowledgement in time (the event may or may not have been handled);
 * - `disconnected`: the connection dropped while waiting for the acknowledgement;
 * - `closed`: the client was closed (by the app, or the server ended the session) first.
 */
export type SignalingErrorCode = ServerErrorCode | "timeout" | "disconnected" | "closed";

/** The base class of every error the SDK throws. */
export class WakiliError extends Error {
  /** What went wrong, for branching. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WakiliError";
    this.code = code;
  }
}

/** A signaling event that was refused or went unanswered. */
export class SignalingError extends WakiliError {
  declare readonly code: SignalingErrorCode;
  /** The event sent. */
  readonly event: string;

  constructor(event: string, code: string, message: string, options?: { cause?: unknown }) {
    super(code, `${event}: ${message}`, options);
    this.name = "SignalingError";
    this.event = event;
  }
}

/** The signaling connection was refused (`connect_error`): a bad token, too many connections. */
export class ConnectionRefusedError extends WakiliError {
  constructor(message: string) {
    super(message === "unauthorized" ? "unauthorized" : "refused", `signaling refused: ${message}`);
    this.name = "ConnectionRefusedError";
  }
}

/** A REST call answered with an error status (the body is the API's `{error: {code, message}}`). */
export class ApiError extends WakiliError {
  /** The HTTP status. */
  readonly status: number;
  /** The method and path called. */
  readonly operation: string;

  constructor(operation: string, status: number, code: string, message: string) {
    super(code, `${operation}: ${status} ${message}`);
    this.name = "ApiError";
    this.status = status;
    this.operation = operation;
  }
}

/** Media could not be set up or negotiated (getUserMedia, SDP, the SFU's refusal). */
export class MediaError extends WakiliError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "MediaError";
  }
}
