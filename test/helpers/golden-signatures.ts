/**
 * The golden signature fixture (test/interop/golden/signatures.json) and the Python Celery
 * scripts behind it: generate_signatures.py writes it, check_signatures.py reads our dicts back
 * with Celery's own canvas code. Python Celery 5.2 runs as /usr/bin/python3.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Embed, SignatureDict } from '../../src/protocol/message.js';

const GOLDEN = fileURLToPath(new URL('../interop/golden/', import.meta.url));
const PYTHON = '/usr/bin/python3';

/** One canvas construction: Celery's dict for it, and how celeriac writes the same thing. */
export interface SignatureCase {
  name: string;
  /** The celeriac construction, as documentation; null for dicts celeriac does not build. */
  celeriac: string | null;
  dict: SignatureDict;
}

/** The embed of a task message Celery published for a workflow. */
export interface EmbedCase {
  name: string;
  /** The message's own task id. */
  id: string;
  task: string;
  embed: Embed;
}

export interface GoldenSignatures {
  signatures: SignatureCase[];
  embeds: EmbedCase[];
}

/** What Celery's `maybe_signature` rebuilds from one dict (see check_signatures.py). */
export interface CeleryView {
  type: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  options: Record<string, unknown>;
  immutable: boolean;
  members: string[] | { header: string[]; body: string } | null;
  /** Chains only: the steps Celery would send, `class:task`, first step first. */
  steps?: string[];
}

function python(script: string, input = ''): string {
  const run = spawnSync(PYTHON, [GOLDEN + script], { input, encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) throw new Error(`${script} failed (${run.status}): ${run.stderr}`);
  return run.stdout;
}

/** The committed fixture. */
export function committedSignatures(): GoldenSignatures {
  return JSON.parse(readFileSync(GOLDEN + 'signatures.json', 'utf8')) as GoldenSignatures;
}

/** The fixture generated now by the installed Celery. */
export function liveSignatures(): GoldenSignatures {
  return JSON.parse(python('generate_signatures.py')) as GoldenSignatures;
}

/** What Celery rebuilds from each dict in `json`, a JSON list as our encoder wrote it. */
export function celeryReads(json: string): CeleryView[] {
  return JSON.parse(python('check_signatures.py', json)) as CeleryView[];
}
