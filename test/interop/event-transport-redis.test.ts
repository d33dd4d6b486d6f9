/** The event transport between celeriac and Python Celery on Redis (a database of its own: pub/sub channels carry its number). */
import { describeEventTransportInterop } from './event-transport-suite.js';

describeEventTransportInterop('Redis', 'redis://127.0.0.1:6379/14', ['celery', 'redis']);
