import { describeCanvasInterop } from './canvas-interop-suite.js';

// Celery's rpc backend cannot join chords, so both sides keep results in Redis.
const RABBITMQ = 'amqp://guest:guest@127.0.0.1:5672//';

describeCanvasInterop('RabbitMQ with Redis results', { broker: RABBITMQ, pythonBroker: RABBITMQ, backend: 'redis://127.0.0.1:6379/6' });
