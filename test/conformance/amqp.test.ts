import { describeBrokerConformance } from './broker-suite.js';
import { openBroker } from './open.js';

describeBrokerConformance('amqp://', () => openBroker('amqp://guest:guest@127.0.0.1:5672//'));
describeBrokerConformance('amqp:// with x-max-priority', () => openBroker('amqp://guest:guest@127.0.0.1:5672//?max_priority=10'));
