// Client-side recording: MediaRecorder chunks uploaded as they are produced, in order, each with
// its SHA-256, retried until the server acknowledges it (a 2xx means it is durable, encrypted).

const RETRY_LIMIT = 8;

/** Records `stream` into a new recording of the consultation and uploads it chunk by chunk. */
export class RecordingUploader {
  /**
   * @param {object} options
   * @param {(path: string, init?: RequestInit) => Promise<Response>} options.fetch - authorized fetch
   * @param {string} options.consultationId
   * @param {MediaStream} options.stream - what is recorded
   * @param {number} options.chunkSeconds - MediaRecorder timeslice
   * @param {(state: object) => void} options.onProgress - `{uploaded, pending, failed?, recordingId}`
   */
  constructor({ fetch, consultationId, stream, chunkSeconds, onProgress }) {
    this.fetch = fetch;
    this.consultationId = consultationId;
    this.stream = stream;
    this.chunkSeconds = chunkSeconds;
    this.onProgress = onProgress ?? (() => {});
    this.queue = [];
    this.seq = 0;
    this.uploaded = 0;
    this.uploading = null;
    this.failed = null;
    this.startedAt = 0;
    this.pausedMs = 0;
    this.pausedAt = 0;
  }

  /** Creates the recording on the server and starts recording. */
  async start() {
    const response = await this.fetch(`/api/v1/consultations/${this.consultationId}/recordings`, {
      method: "POST",
    });
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body?.error?.message ?? `cannot create the recording (${response.status})`);
    }
    this.recordingId = body.recordingId;
    this.chunkUrl = body.chunkUrlTemplate;
    this.completeUrl = body.completeUrl;
    this.maxChunkBytes = body.maxChunkBytes;
    this.mimeType = ["video/webm;codecs=vp8,opus", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
    this.recorder = new MediaRecorder(this.stream, { mimeType: this.mimeType, videoBitsPerSecond: 1_000_000 });
    this.stopped = new Promise((resolve) => {
      this.recorder.onstop = resolve;
    });
    this.recorder.ondataavailable = (event) => {
      if (event.data && event.data.size > 0) {
        this.queue.push({ seq: this.seq++, blob: event.data });
        this.pump();
      }
    };
    this.startedAt = performance.now();
    this.recorder.start(this.chunkSeconds * 1000);
    this.report();
    return this.recordingId;
  }

  /** Pauses (someone must consent again); `resume` continues the same recording. */
  pause() {
    if (this.recorder?.state === "recording") {
      this.recorder.pause();
      this.pausedAt = performance.now();
    }
  }

  resume() {
    if (this.recorder?.state === "paused") {
      this.recorder.resume();
      this.pausedMs += performance.now() - this.pausedAt;
    }
  }

  /** Stops recording, uploads what is left and completes the recording; resolves with it. */
  async stop() {
    if (!this.recorder) {
      return null;
    }
    if (this.recorder.state !== "inactive") {
      if (this.recorder.state === "paused") {
        this.resume();
      }
      this.recorder.stop();
    }
    await this.stopped;
    const durationSeconds = (performance.now() - this.startedAt - this.pausedMs) / 1000;
    while (this.queue.length > 0 || this.uploading) {
      await (this.uploading ?? this.pump());
    }
    if (this.failed) {
      throw this.failed;
    }
    const settings = this.stream.getVideoTracks()[0]?.getSettings() ?? {};
    const response = await this.retrying(() =>
      this.fetch(this.completeUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          chunkCount: this.seq,
          durationSeconds: Math.round(durationSeconds * 10) / 10,
          format: "webm",
          codec: (this.mimeType.split("codecs=")[1] ?? "vp8,opus").replace(/"/g, ""),
          resolution: settings.width ? `${settings.width}x${settings.height}` : undefined,
        }),
      }),
    );
    const body = await response.json();
    if (!response.ok) {
      throw new Error(body?.error?.message ?? `cannot complete the recording (${response.status})`);
    }
    return body;
  }

  pump() {
    if (this.uploading || this.queue.length === 0 || this.failed) {
      return this.uploading ?? Promise.resolve();
    }
    const chunk = this.queue.shift();
    this.uploading = this.upload(chunk)
      .then(() => {
        this.uploaded += 1;
      })
      .catch((error) => {
        this.failed = error;
      })
      .finally(() => {
        this.uploading = null;
        this.report();
        this.pump();
      });
    this.report();
    return this.uploading;
  }

  async upload({ seq, blob }) {
    const bytes = await blob.arrayBuffer();
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    const url = this.chunkUrl.replace("{seq}", String(seq));
    const response = await this.retrying(() =>
      this.fetch(url, {
        method: "PUT",
        headers: { "content-type": "application/octet-stream", "x-content-sha256": hex },
        body: bytes,
      }),
    );
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(`chunk ${seq}: ${body?.error?.message ?? response.status}`);
    }
  }

  // Network errors, 408, 429 and 5xx are retried with backoff; other answers are final.
  async retrying(send) {
    let lastError = null;
    for (let attempt = 0; attempt < RETRY_LIMIT; attempt++) {
      try {
        const response = await send();
        if (response.status !== 408 && response.status !== 429 && response.status < 500) {
          return response;
        }
        lastError = new Error(`server answered ${response.status}`);
      } catch (error) {
        lastError = error;
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(8000, 250 * 2 ** attempt)));
    }
    throw lastError;
  }

  report() {
    this.onProgress({
      recordingId: this.recordingId,
      uploaded: this.uploaded,
      pending: this.queue.length + (this.uploading ? 1 : 0),
      failed: this.failed?.message,
    });
  }
}
