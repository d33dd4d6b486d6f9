/**
 * A worker's part in Celery's monitoring protocol: its heartbeat and task events on the broker's
 * event stream, the remote-control commands it answers on the control channel (with replies to
 * whoever asked), and mingle at start-up — a `hello` to the other workers, whose revoked ids it
 * merges, so a task revoked before this worker started is still not run.
 */
import { randomUUID } from 'node:crypto';
import type { Broker, ControlCommand, Consumer } from '../../brokers/broker.js';
import { describeError } from '../../errors.js';
import type { TypedEmitter, WorkerEventMap } from '../../events.js';
import type { Logger } from '../../logger.js';
import { EventDispatcher } from '../../monitor/event-dispatcher.js';
import { LamportClock } from '../../monitor/lamport-clock.js';
import { attachCeleryEvents } from './celery-events.js';
import { controlCommand, type ControlTarget } from './control-commands.js';
import { Heart } from './heart.js';

/** How long mingle waits for the other workers' replies, as Celery's. */
const MINGLE_TIMEOUT_MS = 1_000;

/** Options of a {@link WorkerRemote}. */
export interface WorkerRemoteOptions {
  hostname: string;
  /** Send task events from the start (`-E`). */
  taskEvents: boolean;
  /** Ask the other workers for their revoked ids at start-up. */
  mingle: boolean;
  logger: Logger;
}

/** What the remote part reads of its worker, besides the commands' target. */
export interface RemoteWorker extends ControlTarget {
  /** Tasks that ended here. */
  processed(): number;
  /** Tasks running now. */
  activeCount(): number;
}

export class WorkerRemote {
  readonly clock = new LamportClock();
  #taskEvents: boolean;
  #dispatcher: EventDispatcher | undefined;
  #heart: Heart | undefined;
  #detachEvents: (() => void) | undefined;
  #control: Consumer | undefined;
  /** Control messages dropped (expired, for another node, unknown), for stats. */
  dropped = 0;

  constructor(
    private readonly broker: Broker,
    private readonly worker: RemoteWorker,
    private readonly emitter: TypedEmitter<WorkerEventMap>,
    private readonly options: WorkerRemoteOptions,
  ) {
    this.#taskEvents = options.taskEvents;
  }

  get taskEvents(): boolean {
    return this.#taskEvents;
  }

  /** Task events on or off; off, the worker's task events have no listener here and cost nothing. */
  set taskEvents(on: boolean) {
    this.#taskEvents = on;
    if (!this.#dispatcher) return;
    if (on && !this.#detachEvents) this.#detachEvents = attachCeleryEvents(this.emitter, this.#dispatcher);
    if (!on && this.#detachEvents) {
      this.#detachEvents();
      this.#detachEvents = undefined;
    }
  }

  /** Subscribes to commands, mingles, and goes online; before the worker takes tasks. */
  async start(): Promise<void> {
    const { control, events } = this.broker;
    if (control) {
      this.#control = await control.subscribe(
        (command) => void this.#onCommand(command),
        (reason) => {
          this.dropped++;
          this.options.logger.warning(`dropped ${reason}`);
        },
        this.options.hostname,
      );
    }
    if (this.options.mingle) await this.#mingle();
    if (events) {
      this.#dispatcher = new EventDispatcher(events, this.options.hostname, this.clock, (error) =>
        this.options.logger.debug(`an event could not be sent: ${describeError(error)}`),
      );
      this.taskEvents = this.#taskEvents;
      this.#heart = new Heart(this.#dispatcher, this.worker);
      await this.#heart.start().catch((error: unknown) => this.options.logger.warning(`worker-online could not be sent: ${describeError(error)}`));
    }
  }

  /** Sends a heartbeat now. */
  heartbeat(): void {
    void this.#heart?.beat();
  }

  /** Goes offline and stops listening. */
  async stop(): Promise<void> {
    this.#detachEvents?.();
    await this.#dispatcher?.drain();
    await this.#heart?.stop().catch(() => undefined);
    await this.#control?.cancel().catch(() => undefined);
  }

  async #onCommand(command: ControlCommand): Promise<void> {
    const { hostname } = this.options;
    if (command.destination && !command.destination.includes(hostname)) return;
    if (command.expiresAt !== undefined && command.expiresAt < Date.now()) {
      this.dropped++;
      this.options.logger.warning(`dropped an expired ${command.method} command (it expired ${((Date.now() - command.expiresAt) / 1000).toFixed(1)} s ago)`);
      return;
    }
    const handler = controlCommand(command.method);
    let reply: unknown;
    if (!handler) {
      this.dropped++;
      reply = { error: `No such command: ${command.method}` };
    } else {
      try {
        reply = await handler(this.worker, command.arguments);
      } catch (error) {
        reply = { error: describeError(error) };
      }
    }
    if (reply === undefined && command.method !== 'heartbeat') return;
    if (!command.replyTo || !command.ticket || !this.broker.control?.reply) return;
    await this.broker.control.reply(command.replyTo, command.ticket, { [hostname]: reply ?? null }).catch((error: unknown) => {
      this.options.logger.warning(`the reply to ${command.method} could not be sent: ${describeError(error)}`);
    });
  }

  /** Celery's mingle: `hello` to every worker, merging the revoked ids they reply with. */
  async #mingle(): Promise<void> {
    const control = this.broker.control;
    if (!control?.openInbox) return;
    const inbox = await control.openInbox();
    const ticket = randomUUID();
    let heard = 0;
    let expected = Number.POSITIVE_INFINITY;
    let allHeard: (() => void) | undefined;
    inbox.listen((replyTicket, body) => {
      if (replyTicket !== ticket) return;
      for (const [node, payload] of Object.entries(body)) {
        if (node === this.options.hostname || typeof payload !== 'object' || payload === null) continue;
        heard++;
        const { revoked, clock } = payload as { revoked?: unknown; clock?: unknown };
        if (typeof revoked === 'object' && revoked !== null) this.worker.mergeRevoked(Object.keys(revoked));
        this.clock.adjust(clock);
      }
      if (heard >= expected) allHeard?.();
    });
    try {
      const reached = await control.broadcast({
        method: 'hello',
        arguments: { from_node: this.options.hostname, revoked: {} },
        destination: null,
        replyTo: inbox.address,
        ticket,
        expiresAt: Date.now() + MINGLE_TIMEOUT_MS,
      });
      // Where the broker says how many workers heard it (this one among them), stop once all replied.
      if (typeof reached === 'number') expected = reached - 1;
      if (heard < expected) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, MINGLE_TIMEOUT_MS);
          allHeard = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      if (heard > 0) this.options.logger.info(`mingle: heard from ${heard} other worker${heard === 1 ? '' : 's'}`);
    } finally {
      await inbox.close();
    }
  }
}
