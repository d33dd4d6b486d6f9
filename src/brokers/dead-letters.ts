/** Dead letters, as the brokers that keep them find one again. */
import type { DeadLetter } from './broker.js';

/** Whether `entry` is the dead letter `letter` names: same queue, time and task id. */
export function sameDeadLetter(entry: Pick<DeadLetter, 'queue' | 'at' | 'message'>, letter: Pick<DeadLetter, 'queue' | 'at' | 'message'>): boolean {
  return entry.queue === letter.queue && entry.at === letter.at && entry.message.headers['id'] === letter.message.headers['id'];
}
