import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

const file = join(mkdtempSync(join(tmpdir(), 'celeriac-conformance-')), 'c.db');

describeBrokerConformance('sqlite://', () => openBroker(`sqlite://${file}`));
describeBackendConformance('sqlite://', () => openBackend(`sqlite://${file}`), () => openBackend(`sqlite://${file}.expiring?expires=1`));
