import { describeCanvasConformance } from './canvas-suite.js';

// RabbitMQ carries the tasks; Redis joins the chords (Celery's rpc backend cannot: see canvas-rpc.test.ts).
describeCanvasConformance('amqp:// with redis:// results', { broker: 'amqp://guest:guest@127.0.0.1:5672//', backend: 'redis://127.0.0.1:6379/6' });
