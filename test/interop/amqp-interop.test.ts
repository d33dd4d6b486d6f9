import { describeCeleryInterop, expectPythonCelery } from './celery-interop-suite.js';

const RABBITMQ = 'amqp://guest:guest@127.0.0.1:5672//';
const REDIS = 'redis://127.0.0.1:6379/6';
// Both sides declare queues with x-max-priority 10; RabbitMQ serves 9 first.
const shared = { broker: `${RABBITMQ}?max_priority=10`, pythonBroker: RABBITMQ, maxPriority: 10, priorities: { low: 0, high: 9 }, exchanges: true };

describeCeleryInterop('RabbitMQ with rpc:// results', { ...shared, backend: 'rpc://', pythonBackend: 'rpc://' });
describeCeleryInterop('RabbitMQ with Redis results', { ...shared, backend: REDIS, pythonBackend: REDIS });
expectPythonCelery();
