import { describeCanvasConformance } from './canvas-suite.js';

describeCanvasConformance('redis://', { broker: 'redis://127.0.0.1:6379/6', backend: 'redis://127.0.0.1:6379/6' });
