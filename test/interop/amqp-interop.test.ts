import { describeCeleryInterop, expectPythonCelery } from './celery-interop-suite.js';

const RABBITMQ = 'amqp://guest:guest@127.0.0.1:5672//';

describeCeleryInterop('RabbitMQ with rpc:// results', {
  broker: `${RABBITMQ}?max_priority=10`,
  backend: 'rpc://',
  pythonBroker: RABBITMQ,
  pythonBackend: 'rpc://',
  maxPriority: 10,
  priorities: { low: 0, high: 9 },
});
describeCeleryInterop('RabbitMQ with Redis results', {
  broker: `${RABBITMQ}?max_priority=10`,
  backend: 'redis://127.0.0.1:6379/6',
  pythonBroker: RABBITMQ,
  pythonBackend: 'redis://127.0.0.1:6379/6',
  maxPriority: 10,
  priorities: { low: 0, high: 9 },
});
expectPythonCelery();
