// @vitest-environment happy-dom
import { act, renderHook, waitFor } from "@testing-library/react";
import { StrictMode, createElement, type ReactNode } from "react";
import { describe, expect, it } from "vitest";

import { Consultation, type ConsultationOptions } from "../../src/consultation/consultation.js";
import { useConsultation } from "../../src/react.js";
import { SignalingClient } from "../../src/signaling.js";
import { FakeApi, webrtcConfig } from "./fake-api.js";
import { FakeSocket } from "./fake-socket.js";

function factory() {
  const made: { consultation: Consultation; socket: FakeSocket }[] = [];
  const create = (options: ConsultationOptions) => {
    const socket = new FakeSocket();
    socket.respond = (event) =>
      event === "consultation:join"
        ? {
            ok: true,
            participantId: "p2",
            resumeToken: "r",
            participants: [
              {
                participantId: "p2",
                userId: "client-1",
                name: "Client",
                role: "client",
                media: { audio: true, video: true, screen: false },
                waiting: true,
                reconnecting: false,
              },
            ],
            recording: { active: false, server: false },
            waiting: true,
            resumed: false,
            topology: "p2p",
            qualityProfile: "medium",
            mediaMode: "p2p",
          }
        : { ok: true };
    const api = new FakeApi().route("GET /api/v1/webrtc/config", () => ({ status: 200, body: webrtcConfig() }));
    const signaling = new SignalingClient({
      url: options.url,
      token: "jwt",
      connect: (url, o) => {
        const made = socket.factory()(url, o);
        setTimeout(() => void socket.open(), 0);
        return made;
      },
    });
    const consultation = new Consultation({ ...options, api: api.client(), signaling, webrtc: null });
    made.push({ consultation, socket });
    return consultation;
  };
  return { made, create };
}

const strict = ({ children }: { children: ReactNode }) => createElement(StrictMode, null, children);

describe("useConsultation", () => {
  it("renders the consultation's state as it changes, and closes it on unmount", async () => {
    const { made, create } = factory();
    const { result, unmount } = renderHook(() =>
      useConsultation({ url: "http://wakili.test", consultationId: "c1", token: "jwt", create }),
    );
    await waitFor(() => expect(result.current.consultation).not.toBeNull());
    expect(result.current.snapshot.status).toBe("idle");
    await act(() => result.current.join());
    expect(result.current.snapshot).toMatchObject({ status: "waiting", participantId: "p2", role: "client" });
    act(() => made[0]?.socket.push("consultation:admitted", { participantId: "p2" }));
    expect(result.current.snapshot.status).toBe("in_call");
    unmount();
    expect(made[0]?.consultation.signaling.state).toBe("closed");
  });

  it("joins on mount with autoJoin, also under StrictMode's double mount", async () => {
    const { made, create } = factory();
    const { result } = renderHook(
      () => useConsultation({ url: "http://wakili.test", consultationId: "c1", token: "jwt", create, autoJoin: true }),
      { wrapper: strict },
    );
    await waitFor(() => expect(result.current.snapshot.status).toBe("waiting"));
    // Whatever StrictMode mounted twice was closed; the consultation rendered is the live one.
    const live = made.at(-1)?.consultation;
    expect(result.current.consultation).toBe(live);
    expect(live?.signaling.state).toBe("connected");
    expect(made.slice(0, -1).every((m) => m.consultation.signaling.state === "closed")).toBe(true);
    expect(result.current.error).toBeNull();
  });
});
