/**
 * Gathers the items added during one event-loop turn, per key, and sends each key's items in
 * one call; every `add` resolves (or rejects) with that call, and with its own item's result when
 * the call returns one per item (reads; writes return none).
 */
export class Batcher<T, R = void> {
  readonly #pending = new Map<string, { items: T[]; done: Promise<readonly R[] | void> }>();

  /**
   * @param send sends one key's items; returns one result per item when `perItem` is set
   * @param perItem hand each `add` its own item's result (reads); otherwise every `add` of a
   *   batch shares one promise, with no allocation per item
   */
  constructor(
    private readonly send: (key: string, items: T[]) => Promise<readonly R[] | void>,
    private readonly perItem = false,
  ) {}

  add(key: string, item: T): Promise<R> {
    let batch = this.#pending.get(key);
    if (!batch) {
      const items: T[] = [];
      const done = new Promise<readonly R[] | void>((resolve, reject) => {
        setImmediate(() => {
          this.#pending.delete(key);
          this.send(key, items).then(resolve, reject);
        });
      });
      batch = { items, done };
      this.#pending.set(key, batch);
    }
    const index = batch.items.push(item) - 1;
    if (!this.perItem) return batch.done as Promise<R>;
    return batch.done.then((results) => results?.[index] as R);
  }
}
