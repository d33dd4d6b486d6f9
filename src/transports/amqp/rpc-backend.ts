/**
 * `rpc://`: Celery's rpc result backend. Results travel back over RabbitMQ as messages: each
 * client has a reply queue (its {@link RpcBackend.replyTo}, put in the `reply_to` property of
 * every task it sends), and a worker publishes each state change of a task to that queue
 * through the default exchange, with the task id as `correlation_id`.
 *
 * As in Celery, only the client that sent a task hears its result, and it is kept in that
 * client's memory, not stored anywhere: `get` from another process answers null (PENDING).
 * `rpc://` uses the broker's RabbitMQ; an `amqp://` URL given as the backend names it directly.
 * Having nowhere to keep state, it cannot save groups or join chords (it has no `chords`),
 * as Celery's rpc backend cannot (`E_NO_CHORD_SUPPORT`).
 */
import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { ChannelSlot } from './channel-slot.js';
import { AmqpSession } from './session.js';
import { ConfigurationError } from '../../errors.js';
import { decodeJsonObject, encodeJson } from '../../protocol/kombu-json.js';
import { SUCCESS, type TaskState } from '../../states.js';
import { numberOption, type ParsedUrl } from '../../url.js';
import { DEFAULT_RESULT_EXPIRES_SECONDS, type GroupTuple, type ResultBackend, type ResultMeta, type StoreContext, type Unwatch } from '../../backends/backend.js';
import { WatcherRegistry } from '../../backends/watchers.js';

/** States heard for tasks nobody waits on are kept up to this many, oldest dropped first. */
const BUFFER_LIMIT = 100_000;

/** The rpc result backend. */
export class RpcBackend implements ResultBackend {
  readonly displayUrl: string;
  /** This client's reply queue: the app's reply address (Celery's `thread_oid`). */
  readonly replyTo: string;
  readonly repliesToSender = true;
  readonly #session: AmqpSession;
  readonly #expiresMs: number;
  readonly #heard = new Map<string, ResultMeta>();
  readonly #watchers = new WatcherRegistry();
  readonly #publisher: ChannelSlot<ConfirmChannel>;

  /**
   * @param url the `rpc://` URL (its options: `expires`, the reply queue's idle lifetime in s)
   * @param amqpUrl the RabbitMQ to use: the broker's URL, or this backend's own `amqp://` URL
   * @param replyTo the reply address the app puts in the `reply_to` of every task it sends
   */
  constructor(url: ParsedUrl, amqpUrl: ParsedUrl, replyTo: string = randomUUID()) {
    this.displayUrl = url.display;
    this.replyTo = replyTo;
    this.#expiresMs = numberOption(url.options, 'expires', DEFAULT_RESULT_EXPIRES_SECONDS) * 1000;
    this.#session = new AmqpSession(amqpUrl);
    this.#publisher = new ChannelSlot(async () => (await this.#session.ready()).createConfirmChannel());
    this.#session.onLost = () => this.#publisher.reset();
  }

  async connect(): Promise<void> {
    await this.#session.connect();
    await this.#session.addSetup((connection) => this.#listen(connection));
  }

  /** Declares this client's reply queue (as Celery does) and consumes it. */
  async #listen(connection: ChannelModel): Promise<void> {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    await channel.assertQueue(this.replyTo, { durable: false, autoDelete: true, arguments: { 'x-expires': this.#expiresMs } });
    await channel.consume(
      this.replyTo,
      (message) => {
        if (!message) return;
        const meta = parseReply(message.content, message.properties.correlationId);
        if (meta) this.#hear(meta);
      },
      { noAck: true },
    );
  }

  #hear(meta: ResultMeta): void {
    if (this.#heard.get(meta.task_id)?.status === SUCCESS) return;
    this.#heard.delete(meta.task_id);
    this.#heard.set(meta.task_id, meta);
    if (this.#heard.size > BUFFER_LIMIT) this.#heard.delete(this.#heard.keys().next().value!);
    this.#watchers.notify(meta);
  }

  /** Sends a state to the client that asked (`reply_to`); a task sent without one has no reader. */
  async store(meta: ResultMeta, context?: StoreContext): Promise<void> {
    const replyTo = context?.replyTo;
    if (!replyTo) return;
    const channel = await this.#publisher.get();
    await new Promise<void>((resolve, reject) =>
      channel.publish('', replyTo, Buffer.from(encodeJson(meta)), {
        correlationId: meta.task_id,
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: 1,
      }, (error) => (error ? reject(error) : resolve())),
    );
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    return this.#heard.get(taskId) ?? null;
  }

  async forget(taskId: string): Promise<void> {
    this.#heard.delete(taskId);
  }

  watch(taskId: string, onChange: (meta: ResultMeta) => void): Unwatch {
    return this.#watchers.add(taskId, onChange);
  }

  /** @throws {@link ConfigurationError}: the rpc backend keeps nothing to restore a group from. */
  async saveGroup(groupId: string, _tuple: GroupTuple): Promise<void> {
    throw this.#cannotSaveGroups(groupId);
  }

  /** @throws {@link ConfigurationError}, as {@link RpcBackend.saveGroup}. */
  async restoreGroup(groupId: string): Promise<GroupTuple | null> {
    throw this.#cannotSaveGroups(groupId);
  }

  /** @throws {@link ConfigurationError}, as {@link RpcBackend.saveGroup}. */
  async forgetGroup(groupId: string): Promise<void> {
    throw this.#cannotSaveGroups(groupId);
  }

  #cannotSaveGroups(groupId: string): ConfigurationError {
    return new ConfigurationError(
      `the result backend ${this.displayUrl} cannot save or restore group ${groupId}, nor join chords: its results go only to the client that sent the task and are stored nowhere; use a redis:// or sqlite:// result backend`,
    );
  }

  /** Nothing is stored, so nothing expires here; RabbitMQ drops an idle reply queue itself. */
  async cleanup(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    await this.#session.close();
  }
}

/** A reply's meta; Celery 5.2 sends only task_id, status, result, traceback and children. */
function parseReply(content: Buffer, correlationId: unknown): ResultMeta | null {
  const reply = decodeJsonObject(content) as Partial<ResultMeta> | null;
  if (!reply) return null;
  const taskId = typeof reply.task_id === 'string' ? reply.task_id : typeof correlationId === 'string' ? correlationId : null;
  if (!taskId || typeof reply.status !== 'string') return null;
  return {
    ...reply,
    task_id: taskId,
    status: reply.status as TaskState,
    result: reply.result ?? null,
    traceback: reply.traceback ?? null,
    children: reply.children ?? [],
    date_done: reply.date_done ?? null,
  };
}
