import { ManualClock } from '../../src/clock.js';
import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

const clock = new ManualClock();
describeBrokerConformance('memory://', () => openBroker('memory://conformance', { clock }), { clock });
describeBackendConformance('memory://', () => openBackend('memory://conformance'), () => openBackend('memory://expiring?expires=1'));
