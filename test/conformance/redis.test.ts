import { describeBackendConformance } from './backend-suite.js';
import { describeBrokerConformance } from './broker-suite.js';
import { openBackend, openBroker } from './open.js';

describeBrokerConformance('redis://', () => openBroker('redis://127.0.0.1:6379/5'));
describeBackendConformance('redis://', () => openBackend('redis://127.0.0.1:6379/5'), () => openBackend('redis://127.0.0.1:6379/5?expires=1'));
