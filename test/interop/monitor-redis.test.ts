/** Celery's monitoring protocol between celeriac and Python Celery on Redis. */
import { monitorInteropSuite } from './monitor-interop-suite.js';

monitorInteropSuite('Redis', 'redis://127.0.0.1:6379/12', ['celery', 'redis']);
