import { describeCanvasInterop } from './canvas-interop-suite.js';

const REDIS = 'redis://127.0.0.1:6379/6';

describeCanvasInterop('Redis', { broker: REDIS, pythonBroker: REDIS, backend: REDIS });
