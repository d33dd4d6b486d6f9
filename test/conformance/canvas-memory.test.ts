import { describeCanvasConformance } from './canvas-suite.js';

describeCanvasConformance('memory://', { broker: 'memory://canvas-conformance', backend: 'memory://canvas-conformance' });
