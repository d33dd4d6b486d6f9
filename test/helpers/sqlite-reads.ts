/** Counting how often a process checks the SQLite file for other connections' commits. */
import Sqlite from 'better-sqlite3';

let reads = 0;
let installed = false;

/**
 * Counts, from now on, every `PRAGMA data_version` any connection of this process reads (the
 * check of the cross-process change watcher); returns the count so far.
 */
export function dataVersionReads(): () => number {
  if (!installed) {
    installed = true;
    const pragma = Sqlite.prototype.pragma;
    Sqlite.prototype.pragma = function (this: Sqlite.Database, source: string, options?: Sqlite.PragmaOptions) {
      if (source.trim() === 'data_version') reads++;
      return pragma.call(this, source, options);
    } as typeof pragma;
  }
  return () => reads;
}
