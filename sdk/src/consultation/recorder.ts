/**
 * Recording in the lawyer's browser (peer-to-peer calls, where the server does not record):
 * `MediaRecorder` chunks uploaded as they are produced, in order, each with its SHA-256, retried
 * until the server acknowledges it (a 2xx means it is durable and encrypted), then completed.
 */

import { ApiError, WakiliError } from "../errors.js";
import { type ApiClient, type ApiSchemas, expectData } from "../rest.js";

/** How often a chunk or the completion is tried before the upload fails. */
const RETRY_LIMIT = 8;

/** The parts of `MediaRecorder` the uploader uses. */
export interface Recorder {
  readonly state: "inactive" | "recording" | "paused";
  readonly mimeType: string;
  ondataavailable: ((event: { data: Blob }) => void) | null;
  onstop: (() => void) | null;
  start(timesliceMs: number): void;
  stop(): void;
  pause(): void;
  resume(): void;
}

/** Makes the recorder: `new MediaRecorder(stream, …)` by default. */
export type RecorderFactory = (stream: MediaStream) => Recorder;

/** Upload progress. */
export interface UploadProgress {
  recordingId: string | null;
  /** Chunks stored by the server. */
  uploaded: number;
  /** Chunks waiting or in flight. */
  pending: number;
  /** Why the upload stopped, if it did. */
  failed: string | null;
}

/** What the uploader needs. */
export interface RecordingUploaderOptions {
  /** The typed REST client (authorized). */
  api: ApiClient;
  consultationId: string;
  /** What is recorded. */
  stream: MediaStream;
  /** The `MediaRecorder` timeslice, in seconds. */
  chunkSeconds: number;
  /** Progress, after every change. */
  onProgress?: (progress: UploadProgress) => void;
  /** Makes the recorder (tests pass a fake). */
  createRecorder?: RecorderFactory;
  /** Milliseconds, monotonic. */
  now?: () => number;
  /** Waits between retries (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
}

function defaultRecorder(stream: MediaStream): Recorder {
  const mimeType = ["video/webm;codecs=vp8,opus", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
  return new MediaRecorder(stream, { ...(mimeType ? { mimeType } : {}), videoBitsPerSecond: 1_000_000 }) as Recorder;
}

async function sha256Hex(bytes: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether an answer is worth trying again (408, 429, 5xx). */
function retryable(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Records a stream into a new recording of the consultation and uploads it chunk by chunk. */
export class RecordingUploader {
  readonly #options: RecordingUploaderOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #recorder: Recorder | null = null;
  #stopped: Promise<void> = Promise.resolve();
  readonly #queue: { seq: number; blob: Blob }[] = [];
  #uploading: Promise<void> | null = null;
  #failed: Error | null = null;
  #seq = 0;
  #uploaded = 0;
  #startedAt = 0;
  #pausedMs = 0;
  #pausedAt = 0;
  /** The recording's id, once created. */
  recordingId: string | null = null;

  constructor(options: RecordingUploaderOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => Date.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** Chunks produced so far. */
  get chunks(): number {
    return this.#seq;
  }

  /** Creates the recording on the server and starts recording; resolves with its id. */
  async start(): Promise<string> {
    const created = await expectData(
      this.#options.api.POST("/api/v1/consultations/{id}/recordings", {
        params: { path: { id: this.#options.consultationId } },
      }),
      "POST /api/v1/consultations/{id}/recordings",
    );
    this.recordingId = created.recordingId;
    const recorder = (this.#options.createRecorder ?? defaultRecorder)(this.#options.stream);
    this.#recorder = recorder;
    this.#stopped = new Promise((resolve) => {
      recorder.onstop = () => resolve();
    });
    recorder.ondataavailable = ({ data }) => {
      if (data.size > 0) {
        this.#queue.push({ seq: this.#seq++, blob: data });
        void this.#pump();
      }
    };
    this.#startedAt = this.#now();
    recorder.start(this.#options.chunkSeconds * 1000);
    this.#report();
    return created.recordingId;
  }

  /** Pauses (someone must consent again); `resume` continues the same recording. */
  pause(): void {
    if (this.#recorder?.state === "recording") {
      this.#recorder.pause();
      this.#pausedAt = this.#now();
    }
  }

  /** Continues after `pause`. */
  resume(): void {
    if (this.#recorder?.state === "paused") {
      this.#recorder.resume();
      this.#pausedMs += this.#now() - this.#pausedAt;
    }
  }

  /** Stops recording, uploads what is left and completes the recording; resolves with it. */
  async stop(): Promise<ApiSchemas["RecordingView"] | null> {
    const recorder = this.#recorder;
    const recordingId = this.recordingId;
    if (!recorder || !recordingId) {
      return null;
    }
    if (recorder.state !== "inactive") {
      if (recorder.state === "paused") {
        this.resume();
      }
      recorder.stop();
    }
    await this.#stopped;
    const durationSeconds = (this.#now() - this.#startedAt - this.#pausedMs) / 1000;
    while ((this.#queue.length > 0 || this.#uploading) && !this.#failed) {
      await (this.#uploading ?? this.#pump());
    }
    if (this.#failed) {
      throw this.#failed;
    }
    const settings = this.#options.stream.getVideoTracks()[0]?.getSettings() ?? {};
    const codec = (recorder.mimeType.split("codecs=")[1] ?? "vp8,opus").replace(/"/g, "");
    return this.#retrying("POST /api/v1/recordings/{id}/complete", () =>
      this.#options.api.POST("/api/v1/recordings/{id}/complete", {
        params: { path: { id: recordingId } },
        body: {
          chunkCount: this.#seq,
          durationSeconds: Math.round(durationSeconds * 10) / 10,
          format: "webm",
          codec,
          ...(settings.width ? { resolution: `${settings.width}x${settings.height}` } : {}),
        },
      }),
    );
  }

  #pump(): Promise<void> {
    if (this.#uploading || this.#queue.length === 0 || this.#failed) {
      return this.#uploading ?? Promise.resolve();
    }
    const chunk = this.#queue.shift();
    if (!chunk) {
      return Promise.resolve();
    }
    this.#uploading = this.#upload(chunk)
      .then(() => {
        this.#uploaded += 1;
      })
      .catch((error: unknown) => {
        this.#failed = error instanceof Error ? error : new WakiliError("upload_failed", String(error));
      })
      .finally(() => {
        this.#uploading = null;
        this.#report();
        void this.#pump();
      });
    this.#report();
    return this.#uploading;
  }

  async #upload({ seq, blob }: { seq: number; blob: Blob }): Promise<void> {
    const recordingId = this.recordingId ?? "";
    const bytes = await blob.arrayBuffer();
    const hash = await sha256Hex(bytes);
    await this.#retrying(`PUT /api/v1/recordings/{id}/chunks/${seq}`, () =>
      this.#options.api.PUT("/api/v1/recordings/{id}/chunks/{seq}", {
        params: { path: { id: recordingId, seq }, header: { "x-content-sha256": hash } },
        body: bytes as unknown as number[],
        bodySerializer: (body: unknown) => body as BodyInit,
        headers: { "content-type": "application/octet-stream" },
      }),
    );
  }

  /** Network errors, 408, 429 and 5xx are tried again with backoff; other answers are final. */
  async #retrying<T>(
    operation: string,
    send: () => Promise<{ data?: T; error?: unknown; response: Response }>,
  ): Promise<T> {
    let last: unknown = null;
    for (let attempt = 0; attempt < RETRY_LIMIT; attempt++) {
      try {
        const result = await send();
        if (!retryable(result.response.status)) {
          return await expectData(Promise.resolve(result), operation);
        }
        last = new ApiError(operation, result.response.status, "unavailable", "the server could not store it now");
      } catch (error) {
        if (error instanceof ApiError) {
          throw error;
        }
        last = error;
      }
      await this.#sleep(Math.min(8000, 250 * 2 ** attempt));
    }
    throw last instanceof Error ? last : new WakiliError("upload_failed", `${operation}: ${String(last)}`);
  }

  #report(): void {
    this.#options.onProgress?.({
      recordingId: this.recordingId,
      uploaded: this.#uploaded,
      pending: this.#queue.length + (this.#uploading ? 1 : 0),
      failed: this.#failed?.message ?? null,
    });
  }
}
