/**
 * The SDK against the real `wakili serve`, started in-process by
 * crates/wakili-server/tests/sdk.rs (manual admission, 30 s resume grace), which books one
 * consultation of `lawyer-1` with `client-1`, mints tokens and passes them in the JSON file
 * `WAKILI_TEST_FILE` names: `{url, consultationId, tokens: {lawyer, client, admin}, users}`.
 *
 * The tests run in order and share the server: REST, then a call (waiting room, admission,
 * signaling acks), then a dropped connection resumed with emits queued meanwhile, then the end.
 * Node has no WebRTC, so the consultations run signaling only (`webrtc: null`).
 */

import { readFileSync } from "node:fs";

import { afterAll, describe, expect, it } from "vitest";

import { Consultation, type ConsultationEvents } from "../../src/consultation/consultation.js";
import { ApiError, SignalingError } from "../../src/errors.js";
import { createApiClient, expectData } from "../../src/rest.js";

interface Inputs {
  url: string;
  consultationId: string;
  tokens: { lawyer: string; client: string; admin: string };
  users: { lawyer: string; client: string };
}

function inputs(): Inputs {
  const file = process.env.WAKILI_TEST_FILE;
  if (!file) {
    throw new Error("run by `cargo test -p wakili-server --test sdk`, which sets WAKILI_TEST_FILE");
  }
  return JSON.parse(readFileSync(file, "utf8")) as Inputs;
}

const env = inputs();
const id = env.consultationId;
const open: Consultation[] = [];

/** A signaling-only consultation that reconnects quickly after a drop. */
function participant(token: string, consultationId = id): Consultation {
  const c = new Consultation({
    url: env.url,
    consultationId,
    token,
    webrtc: null,
    ackTimeoutMs: 5000,
    socketOptions: { reconnectionDelay: 100, reconnectionDelayMax: 300 },
  });
  open.push(c);
  return c;
}

/** Every `event` a consultation emits, for later checks, and a way to wait for one. */
function watch<E extends keyof ConsultationEvents>(c: Consultation, event: E) {
  const seen: ConsultationEvents[E][] = [];
  const waiters: { test: (p: ConsultationEvents[E]) => boolean; resolve: (p: ConsultationEvents[E]) => void }[] = [];
  c.on(event, (payload) => {
    seen.push(payload);
    for (const w of [...waiters]) {
      if (w.test(payload)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(payload);
      }
    }
  });
  return {
    seen,
    next(test: (p: ConsultationEvents[E]) => boolean = () => true, ms = 5000): Promise<ConsultationEvents[E]> {
      const found = seen.find(test);
      if (found !== undefined) {
        return Promise.resolve(found);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching ${String(event)} within ${ms} ms`)), ms);
        waiters.push({
          test,
          resolve: (p) => {
            clearTimeout(timer);
            resolve(p);
          },
        });
      });
    },
  };
}

afterAll(() => {
  for (const c of open) {
    c.close();
  }
});

describe("REST through the typed client", () => {
  const lawyer = createApiClient({ baseUrl: env.url, token: env.tokens.lawyer });

  it("reads the caller, the consultation and its media configuration", async () => {
    const me = await expectData(lawyer.GET("/api/v1/me"), "GET /api/v1/me");
    expect(me).toMatchObject({ id: env.users.lawyer, role: "lawyer" });
    const consultation = await expectData(
      lawyer.GET("/api/v1/consultations/{id}", { params: { path: { id } } }),
      "GET /api/v1/consultations/{id}",
    );
    expect(consultation).toMatchObject({ id, lawyerId: env.users.lawyer, clientId: env.users.client, status: "scheduled" });
    const config = await expectData(
      lawyer.GET("/api/v1/webrtc/config", { params: { query: { consultationId: id } } }),
      "GET /api/v1/webrtc/config",
    );
    expect(config.iceServers.length).toBeGreaterThan(0);
    expect(Object.keys(config.qualityProfiles)).toContain(config.defaultProfile);
  });

  it("books a consultation and finds it in the list", async () => {
    const scheduledAt = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const booked = await expectData(
      lawyer.POST("/api/v1/consultations", {
        body: { clientId: env.users.client, scheduledAt, durationMinutes: 30, title: "Booked by the SDK" },
      }),
      "POST /api/v1/consultations",
    );
    expect(booked).toMatchObject({ title: "Booked by the SDK", status: "scheduled" });
    const list = await expectData(lawyer.GET("/api/v1/consultations"), "GET /api/v1/consultations");
    expect(list.items.map((c) => c.id)).toContain(booked.id);
  });

  it("turns an error answer into an ApiError with the API's code", async () => {
    const client = createApiClient({ baseUrl: env.url, token: env.tokens.client });
    const error = await expectData(
      client.GET("/api/v1/consultations/{id}", { params: { path: { id: "01900000-0000-7000-8000-00000000dead" } } }),
      "GET /api/v1/consultations/{id}",
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: "not_found" });
    const anonymous = createApiClient({ baseUrl: env.url });
    await expect(expectData(anonymous.GET("/api/v1/me"), "GET /api/v1/me")).rejects.toMatchObject({
      status: 401,
      code: "unauthorized",
    });
  });
});

describe("a call over signaling", () => {
  const lawyer = participant(env.tokens.lawyer);
  const client = participant(env.tokens.client);
  const lawyerJoined = watch(lawyer, "participantJoined");
  const lawyerUpdated = watch(lawyer, "participantUpdated");
  const lawyerLeft = watch(lawyer, "participantLeft");
  const clientAdmitted = watch(client, "admitted");

  it("puts the client in the waiting room until the lawyer admits them", async () => {
    const cj = await client.join();
    expect(cj).toMatchObject({ waiting: true, resumed: false, mediaMode: expect.any(String) as string });
    expect(client.snapshot).toMatchObject({ status: "waiting", role: "client", participantId: cj.participantId });
    expect(client.config?.iceServers.length).toBeGreaterThan(0);

    const lj = await lawyer.join();
    expect(lj.waiting).toBe(false);
    expect(lawyer.snapshot.role).toBe("lawyer");
    // With manual admission the client still waits.
    const waiting = lawyer.snapshot.participants.find((p) => p.participantId === cj.participantId);
    expect(waiting).toMatchObject({ role: "client", waiting: true });

    await lawyer.admit(cj.participantId);
    await expect(clientAdmitted.next()).resolves.toEqual({ participantId: cj.participantId });
    expect(client.snapshot.status).toBe("in_call");
    await lawyerUpdated.next((p) => p.participantId === cj.participantId && !p.waiting);
    expect(client.snapshot.participants.map((p) => p.participantId)).toContain(lj.participantId);
  });

  it("types every acknowledgement: fields on success, a SignalingError with the code on refusal", async () => {
    const sample = await lawyer.sendQualityReport({
      rttMs: 25,
      jitterMs: 3,
      packetLossPct: 0,
      outboundKbps: 1200,
      inboundKbps: 1100,
      frameRate: 30,
      width: 1280,
      height: 720,
      candidateType: "host",
    });
    expect(typeof sample.score).toBe("number");
    expect(["low", "medium", "high"]).toContain(sample.level);
    expect(lawyer.snapshot.quality).toEqual(sample);

    const refused = await client.end().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SignalingError);
    expect(refused).toMatchObject({ code: "forbidden", event: "consultation:end" });

    const start = await lawyer.startRecording();
    expect(start).toMatchObject({ recordingId: expect.any(String) as string, active: false });
    expect(start.pending).toContain(client.snapshot.participantId);
    await lawyer.stopRecording();

    const clientId = client.snapshot.participantId ?? "";
    const signals: unknown[] = [];
    client.signaling.on("signal", (s) => signals.push(s));
    await lawyer.signaling.request("signal", { to: clientId, type: "offer", payload: { sdp: "v=0 from the SDK" } });
    await expect.poll(() => signals).toEqual([
      { from: lawyer.snapshot.participantId, type: "offer", payload: { sdp: "v=0 from the SDK" } },
    ]);
  });

  it("resumes a dropped client with its resume token, delivering what it sent while reconnecting", async () => {
    const clientId = client.snapshot.participantId ?? "";
    const lawyerId = lawyer.snapshot.participantId ?? "";
    const tokenBefore = client.signaling.resumeToken;
    expect(tokenBefore).toEqual(expect.any(String));
    const received: unknown[] = [];
    lawyer.signaling.on("signal", (s) => received.push(s));
    const reconnecting = watch(client, "reconnecting");
    const resumed = watch(client, "resumed");

    // The transport goes away under the client, as when a phone loses signal.
    client.signaling.socket?.io.engine.close();
    await reconnecting.next();
    expect(client.snapshot.status).toBe("reconnecting");
    await lawyerUpdated.next((p) => p.participantId === clientId && p.reconnecting);

    // Sent while reconnecting: queued, then delivered after the resume, in order.
    const queued = [
      client.signaling.request("signal", { to: lawyerId, type: "candidate", payload: { n: 1 } }),
      client.signaling.request("signal", { to: lawyerId, type: "candidate", payload: { n: 2 } }),
      client.setMedia({ audio: false }),
    ];
    expect(client.signaling.queued).toBeGreaterThanOrEqual(2);

    const back = await resumed.next(() => true, 10_000);
    expect(back).toMatchObject({ participantId: clientId, resumed: true, waiting: false });
    await Promise.all(queued);
    expect(client.snapshot).toMatchObject({ status: "in_call", participantId: clientId, resumed: true });
    await expect.poll(() => received).toEqual([
      { from: clientId, type: "candidate", payload: { n: 1 } },
      { from: clientId, type: "candidate", payload: { n: 2 } },
    ]);
    await lawyerUpdated.next((p) => p.participantId === clientId && !p.reconnecting);
    await lawyerUpdated.next((p) => p.participantId === clientId && !p.media.audio);
    // Never seen leaving nor joining again: the same participant all along (the client was in the
    // lawyer's join answer, so no participant:joined ever came for it).
    expect(lawyerLeft.seen).toEqual([]);
    expect(lawyerJoined.seen.filter((p) => p.participantId === clientId)).toEqual([]);
  });

  it("ends for everyone, and REST agrees", async () => {
    const clientEnded = watch(client, "ended");
    await lawyer.end();
    await expect(clientEnded.next()).resolves.toMatchObject({ reason: "ended" });
    expect(client.snapshot.status).toBe("ended");
    const api = createApiClient({ baseUrl: env.url, token: env.tokens.admin });
    await expect
      .poll(async () => {
        const c = await expectData(api.GET("/api/v1/consultations/{id}", { params: { path: { id } } }), "GET");
        return c.status;
      })
      .toBe("ended");
  });
});
