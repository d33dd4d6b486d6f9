/**
 * Where a task call goes, as Celery decides it: the call's own options first, then the app's
 * routes (Celery's `task_routes`), then the task's queue, then the app's default queue. A
 * queue the app declared with an exchange of its own (Celery's `task_queues`) is reached
 * through that exchange with its routing key.
 */
import type { PublishOptions, QueueDeclaration } from './brokers/broker.js';
import { ConfigurationError } from './errors.js';

/** Where one task's calls go: a queue, or an exchange and routing key (RabbitMQ). */
export interface Route {
  queue?: string;
  exchange?: string;
  routingKey?: string;
}

/**
 * Celery's `task_routes`: task names (or patterns with `*`, as `'images.*'`) to routes, tried
 * in order; the first match wins.
 */
export type Routes = Record<string, Route>;

/** A resolved destination: the queue a message is meant for, and how it is published there. */
export interface Destination {
  queue: string;
  exchange?: string;
  routingKey?: string;
  /**
   * The exchange is the queue's own, from its declaration: a broker without exchanges reaches
   * the same queue by its name. An exchange named by the call or a route has no such fallback.
   */
  exchangeIsQueues?: boolean;
}

/** Resolves destinations for one app. */
export class Router {
  readonly #routes: Array<{ matches: (name: string) => boolean; route: Route }>;
  readonly #declarations: Map<string, QueueDeclaration>;

  constructor(
    routes: Routes,
    declarations: readonly QueueDeclaration[],
    private readonly defaultQueue: string,
  ) {
    this.#routes = Object.entries(routes).map(([pattern, route]) => ({ matches: matcherOf(pattern), route }));
    this.#declarations = new Map(declarations.map((declaration) => [declaration.name, declaration]));
  }

  /** The destination of a call of `taskName` with `call` options, given the task's own queue. */
  resolve(taskName: string, call: Route, taskQueue: string | undefined): Destination {
    const route = this.#routes.find((entry) => entry.matches(taskName))?.route ?? {};
    const queue = call.queue ?? route.queue ?? taskQueue ?? this.defaultQueue;
    const declared = this.#declarations.get(queue);
    const named = call.exchange ?? route.exchange;
    const exchange = named ?? declared?.exchange;
    const destination: Destination = { queue };
    if (exchange) {
      destination.exchange = exchange;
      destination.routingKey = call.routingKey ?? route.routingKey ?? declared?.routingKey ?? queue;
      if (!named) destination.exchangeIsQueues = true;
    }
    return destination;
  }
}

/**
 * The publish options that carry a destination's exchange and routing key on `broker`. A
 * broker that routes by queue name only reaches a declared queue by its name, and refuses an
 * exchange named by the call or a route.
 */
export function exchangeOptionsFor(
  destination: Destination,
  broker: { capabilities: { exchanges: boolean }; displayUrl: string },
): Pick<PublishOptions, 'exchange' | 'routingKey'> {
  if (!destination.exchange) return {};
  if (broker.capabilities.exchanges) return { exchange: destination.exchange, routingKey: destination.routingKey ?? destination.queue };
  if (destination.exchangeIsQueues) return {};
  throw new ConfigurationError(
    `cannot publish through exchange ${JSON.stringify(destination.exchange)}: ${broker.displayUrl} routes by queue name only (exchanges need an amqp:// broker); send to a queue instead`,
  );
}

function matcherOf(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*')) return (name) => name === pattern;
  const regex = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`);
  return (name) => regex.test(name);
}

function escapeRegex(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}
