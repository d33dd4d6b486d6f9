import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

describeBrokerConformance('memory://', () => openBroker('memory://conformance'));
describeBackendConformance('memory://', () => openBackend('memory://conformance'), () => openBackend('memory://expiring?expires=1'));
