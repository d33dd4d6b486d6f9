/** The event transport between celeriac and Python Celery on RabbitMQ. */
import { deleteAmqpQueues } from '../helpers/amqp.js';
import { describeEventTransportInterop } from './event-transport-suite.js';

const AMQP = 'amqp://guest:guest@127.0.0.1:5672//';
describeEventTransportInterop('RabbitMQ', AMQP, ['celery', 'amqp'], (queue) => deleteAmqpQueues(AMQP, [queue]));
