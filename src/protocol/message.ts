/**
 * The two shapes a task message takes: {@link TransportMessage} is what a broker carries
 * (Celery's headers and properties around serialized body bytes), and {@link TaskMessage} is the
 * decoded request a worker runs.
 */

/** AMQP-style message properties, as Celery sets them. */
export interface MessageProperties {
  correlation_id?: string;
  reply_to?: string;
  /** 2 = persistent (tasks), 1 = transient (events, replies). */
  delivery_mode?: number;
  priority?: number;
  /** Per-message TTL in milliseconds, as a string (AMQP `expiration`). */
  expiration?: string;
  [key: string]: unknown;
}

/** One message as a broker stores and delivers it. Brokers never look inside `body`. */
export interface TransportMessage {
  headers: Record<string, unknown>;
  properties: MessageProperties;
  contentType: string;
  contentEncoding: string;
  body: Buffer;
}

/** A canvas signature as Celery puts it on the wire. */
export interface SignatureDict {
  task: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  options?: Record<string, unknown>;
  subtask_type?: string | null;
  immutable?: boolean;
  [key: string]: unknown;
}

/** The third element of a v2 body: what runs after this task. Kept verbatim for canvas. */
export interface Embed {
  callbacks: SignatureDict[] | null;
  errbacks: SignatureDict[] | null;
  chain: SignatureDict[] | null;
  chord: SignatureDict | null;
}

/** A decoded task request. Field names follow the v2 headers, in camelCase. */
export interface TaskMessage {
  id: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: Embed;
  eta: Date | null;
  expires: Date | null;
  retries: number;
  /** `[hard, soft]` in seconds, the order Celery uses on the wire. */
  timeLimit: [number | null, number | null];
  rootId: string;
  parentId: string | null;
  group: string | null;
  groupIndex: number | null;
  shadow: string | null;
  origin: string | null;
  ignoreResult: boolean;
  replyTo: string | null;
  priority: number | null;
  /** Headers this codec does not model (stamps, user headers), passed through untouched. */
  extraHeaders: Record<string, unknown>;
}

/** An empty embed: nothing runs after the task. */
export function emptyEmbed(): Embed {
  return { callbacks: null, errbacks: null, chain: null, chord: null };
}
