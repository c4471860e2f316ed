import { describe, expect, it } from "vitest";

import { RecordingUploader, type Recorder } from "../../src/consultation/recorder.js";
import { FakeApi } from "./fake-api.js";
import { cameraStream } from "./fake-webrtc.js";

class FakeRecorder implements Recorder {
  state: Recorder["state"] = "inactive";
  readonly mimeType = "video/webm;codecs=vp8,opus";
  ondataavailable: ((event: { data: Blob }) => void) | null = null;
  onstop: (() => void) | null = null;
  timeslice = 0;
  start(timeslice: number) {
    this.state = "recording";
    this.timeslice = timeslice;
  }
  chunk(text: string) {
    this.ondataavailable?.({ data: new Blob([text]) });
  }
  stop() {
    this.chunk("last");
    this.state = "inactive";
    this.onstop?.();
  }
  pause() {
    this.state = "paused";
  }
  resume() {
    this.state = "recording";
  }
}

async function sha256(text: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function server() {
  const api = new FakeApi();
  const stored = new Map<number, string>();
  let failures = 1;
  api
    .route("POST /api/v1/consultations/*/recordings", () => ({
      status: 201,
      body: { recordingId: "rec-1", chunkUrlTemplate: "x", completeUrl: "y", maxChunkBytes: 1 << 20 },
    }))
    .route("PUT /api/v1/recordings/rec-1/chunks/*", (r) => {
      if (failures-- > 0) return { status: 503, body: { error: { code: "unavailable", message: "later" } } };
      const seq = Number(r.path.split("/").pop());
      stored.set(seq, new TextDecoder().decode(r.body));
      return { status: 201, body: { seq, size: r.body.byteLength, sha256: r.headers.get("x-content-sha256") } };
    })
    .route("POST /api/v1/recordings/rec-1/complete", (r) => ({
      status: 200,
      body: { id: "rec-1", status: "completed", request: JSON.parse(new TextDecoder().decode(r.body)) as unknown },
    }));
  return { api, stored };
}

describe("RecordingUploader", () => {
  it("uploads chunks in order with their SHA-256, retrying a 503, then completes", async () => {
    const { api, stored } = server();
    const recorder = new FakeRecorder();
    let now = 0;
    const progress: number[] = [];
    const uploader = new RecordingUploader({
      api: api.client(),
      consultationId: "c1",
      stream: cameraStream(),
      chunkSeconds: 2,
      createRecorder: () => recorder,
      now: () => now,
      sleep: () => Promise.resolve(),
      onProgress: (p) => progress.push(p.uploaded),
    });
    await expect(uploader.start()).resolves.toBe("rec-1");
    expect(recorder.timeslice).toBe(2000);
    recorder.chunk("zero");
    recorder.chunk("one");
    now = 12_345;
    const done = (await uploader.stop()) as unknown as { request: Record<string, unknown> };
    expect([...stored.entries()].sort()).toEqual([
      [0, "zero"],
      [1, "one"],
      [2, "last"],
    ]);
    const put = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/chunks/0"));
    expect(put).toHaveLength(2); // the 503, then stored
    expect(put[1]?.headers.get("x-content-sha256")).toBe(await sha256("zero"));
    expect(put[1]?.headers.get("content-type")).toBe("application/octet-stream");
    expect(put[1]?.headers.get("authorization")).toBe("Bearer jwt");
    expect(done.request).toEqual({
      chunkCount: 3,
      durationSeconds: 12.3,
      format: "webm",
      codec: "vp8,opus",
      resolution: "1280x720",
    });
    expect(progress.at(-1)).toBe(3);
  });

  it("fails with the API's error when the server refuses a chunk for good", async () => {
    const api = new FakeApi()
      .route("POST /api/v1/consultations/*/recordings", () => ({ status: 201, body: { recordingId: "rec-2" } }))
      .route("PUT /api/v1/recordings/rec-2/chunks/*", () => ({
        status: 409,
        body: { error: { code: "server_recording", message: "the server records this call" } },
      }));
    const recorder = new FakeRecorder();
    const uploader = new RecordingUploader({
      api: api.client(),
      consultationId: "c1",
      stream: cameraStream(),
      chunkSeconds: 1,
      createRecorder: () => recorder,
    });
    await uploader.start();
    await expect(uploader.stop()).rejects.toMatchObject({ code: "server_recording", status: 409 });
  });
});
