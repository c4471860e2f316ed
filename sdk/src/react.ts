/**
 * `useConsultation`: a `Consultation` for a React (or React Native) component.
 *
 * ```tsx
 * const { snapshot, consultation, join } = useConsultation({ url, consultationId, token });
 * if (snapshot.status === "waiting") return <WaitingRoom />;
 * ```
 *
 * The consultation is made in an effect, once per `consultationId` (other options are read when
 * it is made), and closed when the component unmounts or the id changes — so React's StrictMode
 * double mount makes a second one rather than reusing a closed one. Until it exists
 * `consultation` is `null` and `snapshot` is an idle one. `snapshot` re-renders the component on
 * every change. `autoJoin` joins as soon as it is made.
 */

import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from "react";

import { Consultation, type ConsultationOptions, type ConsultationSnapshot } from "./consultation/consultation.js";

/** `ConsultationOptions`, plus whether to join on mount. */
export interface UseConsultationOptions extends ConsultationOptions {
  /** Join as soon as mounted (default false: call `join`). */
  autoJoin?: boolean;
  /** Makes the consultation (tests pass a fake); `new Consultation(options)` by default. */
  create?: (options: ConsultationOptions) => Consultation;
}

/** What the hook gives the component. */
export interface UseConsultationResult {
  /** The consultation (for its methods and events); `null` before the first effect. */
  consultation: Consultation | null;
  /** Its state, re-rendered on change. */
  snapshot: ConsultationSnapshot;
  /** Joins; a failure is also kept in `error`. */
  join: () => Promise<void>;
  /** The last error (a failed join, media negotiation, …). */
  error: Error | null;
}

function idle(consultationId: string): ConsultationSnapshot {
  return {
    status: "idle",
    consultationId,
    participantId: null,
    role: null,
    participants: [],
    topology: "p2p",
    mediaMode: null,
    profile: null,
    media: { audio: false, video: false, screen: false },
    recording: { active: false, server: false },
    activeSpeaker: null,
    quality: null,
    resumeToken: null,
    resumed: false,
    ended: null,
  };
}

/** Runs a consultation for the component's lifetime and renders its snapshot. */
export function useConsultation(options: UseConsultationOptions): UseConsultationResult {
  const latest = useRef(options);
  useEffect(() => {
    latest.current = options;
  });
  const { consultationId } = options;
  const [consultation, setConsultation] = useState<Consultation | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const placeholder = useMemo(() => idle(consultationId), [consultationId]);

  useEffect(() => {
    const { create, autoJoin, ...rest } = latest.current;
    const made = create ? create(rest) : new Consultation(rest);
    const offError = made.on("error", setError);
    setConsultation(made);
    if (autoJoin) {
      made.join().catch((e: unknown) => setError(e instanceof Error ? e : new Error(String(e))));
    }
    return () => {
      offError();
      made.close();
    };
  }, [consultationId]);

  const subscribe = useCallback(
    (changed: () => void) => (consultation ? consultation.on("state", changed) : () => {}),
    [consultation],
  );
  const read = () => consultation?.snapshot ?? placeholder;
  const snapshot = useSyncExternalStore(subscribe, read, read);

  const join = useCallback(async () => {
    if (!consultation) {
      throw new Error("the consultation is not ready yet (join after the first render)");
    }
    try {
      await consultation.join();
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
      throw e;
    }
  }, [consultation]);

  return { consultation, snapshot, join, error };
}
