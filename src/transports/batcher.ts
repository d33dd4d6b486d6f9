/**
 * Gathers the items added during one event-loop turn, per key, and sends each key's items in
 * one call; every `add` resolves (or rejects) with that call.
 */
export class Batcher<T> {
  readonly #pending = new Map<string, { items: T[]; done: Promise<void> }>();

  constructor(private readonly send: (key: string, items: T[]) => Promise<unknown>) {}

  add(key: string, item: T): Promise<void> {
    let batch = this.#pending.get(key);
    if (!batch) {
      const items: T[] = [];
      const done = new Promise<void>((resolve, reject) => {
        setImmediate(() => {
          this.#pending.delete(key);
          this.send(key, items).then(() => resolve(), reject);
        });
      });
      batch = { items, done };
      this.#pending.set(key, batch);
    }
    batch.items.push(item);
    return batch.done;
  }
}
