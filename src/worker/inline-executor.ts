/** Runs handlers on the worker's own event loop: right for I/O-bound tasks, the default pool. */
import type { ResultTuple } from '../backends/backend.js';
import { currentTask, type RunningTask } from './current-task.js';
import { ExecutionContext } from './execution-context.js';
import { retryRequestFor, type Execution, type Executor, type RunOutcome, type RunRequest } from './executor.js';

/** Options of an {@link InlineExecutor}. */
export interface InlineExecutorOptions {
  /** Runs at once. */
  concurrency: number;
  /** Follow each handler across `await` so tasks it sends are recorded as its children. */
  trackChildren: boolean;
}

/** The event-loop pool. */
export class InlineExecutor implements Executor {
  readonly kind = 'event';
  #busy = 0;

  constructor(private readonly options: InlineExecutorOptions) {}

  get concurrency(): number {
    return this.options.concurrency;
  }

  get capacity(): number {
    return this.options.concurrency;
  }

  resize(by: number): boolean {
    this.options.concurrency = Math.max(1, this.options.concurrency + by);
    return true;
  }

  get busy(): number {
    return this.#busy;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {}

  run(run: RunRequest): Execution {
    const context = new ExecutionContext(run.request, run.kwargs, run.task, run.logger, run.onProgress);
    const running: RunningTask | undefined = this.options.trackChildren ? { id: run.request.id, rootId: run.request.rootId, children: [] } : undefined;
    const children = (): ResultTuple[] => running?.children ?? [];
    const threw = (error: unknown): RunOutcome => ({ kind: 'threw', error, retry: retryRequestFor(run.task, run.request, error), children: children() });
    let value: unknown;
    run.onStart();
    try {
      const handler = run.task.handler as (...args: unknown[]) => unknown;
      value = running ? currentTask.run(running, () => handler(context, ...run.args)) : handler(context, ...run.args);
    } catch (error) {
      return settledExecution(threw(error), context);
    }
    if (!isPromiseLike(value)) return settledExecution({ kind: 'returned', value, children: children() }, context);
    this.#busy++;
    let end!: (outcome: RunOutcome) => void;
    let ended = false;
    const outcome = new Promise<RunOutcome>((resolve) => {
      end = (result) => {
        if (ended) return;
        ended = true;
        this.#busy--;
        resolve(result);
      };
    });
    value.then(
      (result) => end({ kind: 'returned', value: result, children: children() }),
      (error: unknown) => end(threw(error)),
    );
    return {
      outcome,
      signal: (reason) => context.abort(reason),
      terminate: (reason) => {
        context.abort(reason);
        end({ kind: 'threw', error: reason, retry: null, children: children() });
      },
    };
  }
}

/** A run that ended before `run` returned: its outcome is there at once; signals have nothing left to stop. */
function settledExecution(immediate: RunOutcome, context: ExecutionContext): Execution {
  return {
    immediate,
    get outcome() {
      return Promise.resolve(immediate);
    },
    signal: (reason) => context.abort(reason),
    terminate: () => undefined,
  };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
