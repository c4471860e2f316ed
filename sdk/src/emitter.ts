/**
 * A small typed event emitter that runs the same in browsers, React Native and Node (no
 * `node:events`). `Events` maps each event name to its payload type.
 */
export class Emitter<Events extends object> {
  readonly #handlers = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Calls `handler` on every `event`; returns a function that removes it. */
  on<E extends keyof Events>(event: E, handler: (payload: Events[E]) => void): () => void {
    let set = this.#handlers.get(event);
    if (!set) {
      set = new Set();
      this.#handlers.set(event, set);
    }
    set.add(handler);
    return () => this.off(event, handler);
  }

  /** Calls `handler` on the next `event` only. */
  once<E extends keyof Events>(event: E, handler: (payload: Events[E]) => void): () => void {
    const off = this.on(event, (payload) => {
      off();
      handler(payload);
    });
    return off;
  }

  /** Removes `handler` from `event`. */
  off<E extends keyof Events>(event: E, handler: (payload: Events[E]) => void): void {
    this.#handlers.get(event)?.delete(handler);
  }

  /** Resolves with the next `event`'s payload. */
  next<E extends keyof Events>(event: E): Promise<Events[E]> {
    return new Promise((resolve) => this.once(event, resolve));
  }

  /**
   * Calls every handler of `event` with `payload`. A handler that throws does not keep the
   * others from running; its error goes to `onHandlerError` (the console by default).
   */
  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      try {
        (handler as (payload: Events[E]) => void)(payload);
      } catch (error) {
        this.onHandlerError(error, String(event));
      }
    }
  }

  /** Removes every handler. */
  clear(): void {
    this.#handlers.clear();
  }

  /** Where errors thrown by handlers go. */
  onHandlerError: (error: unknown, event: string) => void = (error, event) => {
    console.error(`wakili: a handler of "${event}" threw`, error);
  };
}
