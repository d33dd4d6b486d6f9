/**
 * celeriac: a distributed task queue for TypeScript, wire-compatible with Python Celery.
 *
 * This barrel exports the public API and never a broker driver: drivers load when a URL needs them.
 */
export { Celeriac, DEFAULT_URL, type CeleriacConfig } from './app.js';
export { Task, type ApplyOptions, type TaskContext, type TaskHandler, type TaskOptions, type RetryOptions, type TaskArgs, type TaskResult, type PublishRetryPolicy, type ErrorMatcher } from './task.js';
export {
  AsyncResult,
  GroupResult,
  gather,
  wait,
  asCompleted,
  type Completed,
  FIRST_COMPLETED,
  FIRST_EXCEPTION,
  ALL_COMPLETED,
  type ReturnWhen,
  type WaitOutcome,
  type GetOptions,
  type RevokeOptions,
  type AnyResult,
} from './result.js';
export {
  Signature,
  Chain,
  Group,
  Chord,
  signature,
  chain,
  group,
  chord,
  map,
  starmap,
  chunks,
  type IgnoresParent,
  type Missing,
  type MissingArgs,
  type AnySignature,
  type ResultOf,
  type SignatureOptions,
} from './canvas/signature.js';
export type { SignatureDict, Embed } from './protocol/message.js';
export { Beat, type BeatSettings, type BeatStartOptions, type BeatEntryInfo, type BeatAppHost } from './beat/beat.js';
export { crontab, type Schedule, type IntervalSchedule, type CrontabSchedule, type OnceSchedule, type Every, type IntervalParts, type CrontabOptions, type ScheduleSpec } from './beat/schedule.js';
export type { ScheduleDefinition, ScheduleEntry, ScheduleSendOptions, MissedPolicy } from './beat/entry.js';
export { BeatService, type BeatEventMap, type BeatHost } from './beat/scheduler.js';
export type { BeatStore, LeaderInfo } from './beat/store.js';
export { Worker, type WorkerStats } from './worker/worker.js';
export type { WorkerOptions, WorkerSettings } from './worker/options.js';
export type { WorkerEventMap, RejectReason } from './events.js';
export * from './errors.js';
export { Control, Inspect, type Acknowledgement, type Destination, type Replies, type ReplyOptions } from './control.js';
export type { RequestInfo } from './worker/remote/control-commands.js';
export { EventReceiver, type EventStream, type ReceiveOptions } from './monitor/receiver.js';
export { State, type EventTaskState, type StateOptions, type TaskInfo, type WorkerInfo } from './monitor/state.js';
export type { CeleryEvent } from './brokers/broker.js';
export { parseRate, type RateLimit } from './rate-limit.js';
export * as states from './states.js';
export { systemClock, ManualClock, type Clock, type ClockTimer } from './clock.js';
export { createLogger, toLogger, type Logger, type LogLevel, type LogFields, type LogMethod, type ForeignLogger } from './logger.js';
export type { Broker, BrokerCapabilities, Delivery, PublishOptions, ConsumeOptions, Consumer, ControlChannel, ControlCommand, DeadLetter, QueueDeclaration } from './brokers/broker.js';
export type { ResultBackend, ResultMeta, StoreContext } from './backends/backend.js';
export type { Route, Routes } from './routing.js';
export type { StandardSchema, SchemaIssue, SchemaResult } from './schema.js';
export { createBroker } from './brokers/index.js';
export { createBackend } from './backends/index.js';
