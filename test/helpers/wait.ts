/** Waiting helpers for tests: on events and conditions, never on fixed sleeps alone. */
import type { TypedEmitter } from '../../src/events.js';

/** Resolves with the first payload of `event` that satisfies `match`. */
export function nextEvent<E extends { [K in keyof E]: unknown }, K extends keyof E & string>(
  emitter: TypedEmitter<E>,
  event: K,
  match: (payload: E[K]) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<E[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no ${event} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (payload: E[K]): void => {
      if (!match(payload)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(payload);
    };
    emitter.on(event, listener);
  });
}

/** Polls `condition` every few ms until it holds; for state that has no event. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10)); // the poll interval
  }
}
