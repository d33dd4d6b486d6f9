import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterAll } from 'vitest';
import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

const file = join(mkdtempSync(join(tmpdir(), 'celeriac-conformance-')), 'c.db');
let inspector: Sqlite.Database | undefined;
afterAll(() => inspector?.close());

/** Rows of a group's chord join, read on a connection of its own (as another process would). */
async function joinLeftovers(groupId: string): Promise<number> {
  inspector ??= new Sqlite(file, { readonly: true });
  const count = (table: string): number => (inspector!.prepare(`SELECT count(*) AS n FROM ${table} WHERE group_id = ?`).get(groupId) as { n: number }).n;
  return count('celeriac_chords') + count('celeriac_chord_parts');
}

describeBrokerConformance('sqlite://', () => openBroker(`sqlite://${file}`));
describeBackendConformance('sqlite://', () => openBackend(`sqlite://${file}`), () => openBackend(`sqlite://${file}.expiring?expires=1`), { joinLeftovers });
