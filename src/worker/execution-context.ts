/** The {@link TaskContext} a handler receives while it runs. */
import { MaxRetriesExceededError, Retry } from '../errors.js';
import type { Logger } from '../logger.js';
import type { TaskMessage } from '../protocol/message.js';
import type { RetryOptions, Task, TaskContext } from '../task.js';
import { mayRetry, retryCountdown } from './retry-policy.js';

/** Receives a running task's progress reports. */
export type ProgressReporter = (current: number, total: number | null, info: Record<string, unknown>) => void;

/** A running task's context. The signal and logger are made only if the handler asks. */
export class ExecutionContext implements TaskContext {
  #controller: AbortController | undefined;
  #log: Logger | undefined;

  constructor(
    readonly request: TaskMessage,
    readonly kwargs: Readonly<Record<string, unknown>>,
    private readonly task: Task<never, unknown>,
    private readonly baseLogger: Logger,
    private readonly reportProgress: ProgressReporter,
  ) {}

  get id(): string {
    return this.request.id;
  }

  get name(): string {
    return this.request.task;
  }

  get retries(): number {
    return this.request.retries;
  }

  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    return this.#controller.signal;
  }

  get log(): Logger {
    this.#log ??= this.baseLogger.child(`${this.request.task}[${this.request.id}]`);
    return this.#log;
  }

  /** True once the signal fired. */
  get aborted(): boolean {
    return this.#controller?.signal.aborted ?? false;
  }

  /** Fires the task's signal with `reason` (soft limit, revoke, shutdown). */
  abort(reason: Error): void {
    this.#controller ??= new AbortController();
    if (!this.#controller.signal.aborted) this.#controller.abort(reason);
  }

  progress(current: number, total?: number, info: Record<string, unknown> = {}): void {
    this.reportProgress(current, total ?? null, info);
  }

  retry(options: RetryOptions = {}): never {
    const maxRetries = options.maxRetries !== undefined ? options.maxRetries : this.task.options.maxRetries;
    if (!mayRetry(maxRetries, this.retries)) {
      if (options.error !== undefined) throw options.error;
      throw new MaxRetriesExceededError(this.name, this.id, this.retries);
    }
    const countdown = options.countdown ?? retryCountdown(this.task.options, this.retries);
    throw new Retry(countdown, options.error ?? null);
  }
}
