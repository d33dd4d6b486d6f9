import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeCanvasConformance } from './canvas-suite.js';

const url = `sqlite://${join(mkdtempSync(join(tmpdir(), 'celeriac-canvas-')), 'canvas.db')}`;
describeCanvasConformance('sqlite://', { broker: url, backend: url });
