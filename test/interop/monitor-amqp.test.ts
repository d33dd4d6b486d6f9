/** Celery's monitoring protocol between celeriac and Python Celery on RabbitMQ (results over rpc://). */
import { monitorInteropSuite } from './monitor-interop-suite.js';

monitorInteropSuite('RabbitMQ', 'amqp://guest:guest@127.0.0.1:5672//', ['celery', 'amqp'], 'rpc://');
