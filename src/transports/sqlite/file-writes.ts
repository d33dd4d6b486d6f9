/**
 * Kernel notifications of writes to a SQLite file's write-ahead log, so a process can learn of
 * another process's commit without polling: every commit, from any process, writes the `-wal`
 * file next to the database. The watch (`fs.watch`, inotify on Linux) is on the directory, not on
 * the log itself, so it holds while the log does not exist yet, and when a checkpoint truncates
 * it or the last connection deletes it.
 *
 * One watch per directory serves every listener of the process, whatever file they listen to,
 * and the events of one event-loop turn (a commit writes the log several times) make one call of
 * each listener. The watch never keeps the process alive, and closes with its last listener.
 * Where the directory cannot be watched (or the watch fails), listeners are simply not called:
 * their users keep a slow poll for that.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** How long a failed watch waits before it is made again, while it has listeners. */
const REARM_MS = 1_000;

interface DirectoryWatch {
  watcher: FSWatcher | undefined;
  rearm: NodeJS.Timeout | undefined;
  /** Listeners by the name of the log file they listen to. */
  listeners: Map<string, Set<() => void>>;
  /** Log files written since the last call of their listeners. */
  written: Set<string>;
  scheduled: boolean;
}

const directories = new Map<string, DirectoryWatch>();

/**
 * Calls `listener` (at most once per event-loop turn) after the write-ahead log of the SQLite
 * file at `path` (absolute) was written, by this process or another; returns the unsubscribe.
 */
export function onLogWrite(path: string, listener: () => void): () => void {
  const directory = dirname(path);
  const log = `${basename(path)}-wal`;
  let entry = directories.get(directory);
  if (!entry) {
    entry = { watcher: undefined, rearm: undefined, listeners: new Map(), written: new Set(), scheduled: false };
    directories.set(directory, entry);
    arm(directory, entry);
  }
  let forLog = entry.listeners.get(log);
  if (!forLog) entry.listeners.set(log, (forLog = new Set()));
  const own = (): void => listener(); // its own identity: one function may listen twice
  forLog.add(own);
  const watched = entry;
  return () => {
    forLog.delete(own);
    if (forLog.size === 0 && watched.listeners.get(log) === forLog) watched.listeners.delete(log);
    if (watched.listeners.size === 0 && directories.get(directory) === watched) {
      directories.delete(directory);
      watched.watcher?.close();
      clearTimeout(watched.rearm);
    }
  };
}

function arm(directory: string, entry: DirectoryWatch): void {
  entry.rearm = undefined;
  try {
    entry.watcher = watch(directory, { persistent: false }, (_event, name) => {
      if (name !== null && entry.listeners.has(name)) written(entry, name);
    });
    entry.watcher.on('error', () => failed(directory, entry));
  } catch {
    failed(directory, entry);
  }
}

/** The watch failed (no inotify, the directory went): try again later, while it is needed. */
function failed(directory: string, entry: DirectoryWatch): void {
  entry.watcher?.close();
  entry.watcher = undefined;
  if (directories.get(directory) !== entry || entry.rearm) return;
  entry.rearm = setTimeout(() => arm(directory, entry), REARM_MS);
  entry.rearm.unref();
}

function written(entry: DirectoryWatch, log: string): void {
  entry.written.add(log);
  if (entry.scheduled) return;
  entry.scheduled = true;
  setImmediate(() => {
    entry.scheduled = false;
    const logs = [...entry.written];
    entry.written.clear();
    for (const name of logs) for (const listener of [...(entry.listeners.get(name) ?? [])]) listener();
  });
}
