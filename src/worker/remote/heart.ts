/**
 * A worker's heartbeat, as Celery's: `worker-online` at start, `worker-heartbeat` every
 * {@link HEARTBEAT_SECONDS} (monitors count a worker offline after twice that without one),
 * `worker-offline` at stop; each with `freq, active, processed, loadavg, sw_ident, sw_ver, sw_sys`.
 */
import { loadavg } from 'node:os';
import type { EventDispatcher } from '../../monitor/event-dispatcher.js';
import { VERSION } from '../../version.js';

/** Celery's heartbeat interval. */
export const HEARTBEAT_SECONDS = 2;
/** What a worker reports as its software, in every worker event. */
export const SOFTWARE = { sw_ident: 'celeriac', sw_ver: VERSION, sw_sys: osName() } as const;

/** What the heartbeat reads from its worker. */
export interface Pulse {
  activeCount(): number;
  processed(): number;
}

export class Heart {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dispatcher: EventDispatcher,
    private readonly pulse: Pulse,
  ) {}

  /** Sends `worker-online` and starts the beat. */
  async start(): Promise<void> {
    await this.#send('worker-online');
    this.#timer = setInterval(() => void this.#send('worker-heartbeat'), HEARTBEAT_SECONDS * 1000);
    this.#timer.unref();
  }

  /** One heartbeat now, as the `heartbeat` control command asks (with `freq` 5, as Celery's). */
  beat(): Promise<void> {
    return this.#send('worker-heartbeat', 5);
  }

  /** Stops the beat and sends `worker-offline`. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#send('worker-offline');
  }

  #send(type: string, freq = HEARTBEAT_SECONDS): Promise<void> {
    const load = loadavg().map((value) => Math.round(value * 100) / 100);
    return this.dispatcher.send(type, { freq, active: this.pulse.activeCount(), processed: this.pulse.processed(), loadavg: load, ...SOFTWARE });
  }
}

/** Python's `platform.system()`: Linux, Darwin, Windows. */
function osName(): string {
  return { linux: 'Linux', darwin: 'Darwin', win32: 'Windows' }[process.platform as string] ?? process.platform;
}
