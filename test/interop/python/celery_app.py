"""A Python Celery app for celeriac's interop tests, on the broker and backend named by
CELERIAC_TEST_BROKER and CELERIAC_TEST_BACKEND (and CELERIAC_TEST_MAX_PRIORITY for RabbitMQ).

Run as a script, it is a client: `celery_app.py SCENARIO QUEUE` calls celeriac's tasks and
prints one line per observation, for the test to compare."""
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from celery import Celery

app = Celery('celery_app', broker=os.environ['CELERIAC_TEST_BROKER'], backend=os.environ['CELERIAC_TEST_BACKEND'])
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 1
if os.environ.get('CELERIAC_TEST_MAX_PRIORITY'):
    app.conf.task_queue_max_priority = int(os.environ['CELERIAC_TEST_MAX_PRIORITY'])
if os.environ.get('CELERIAC_TEST_VISIBILITY'):
    app.conf.broker_transport_options = {'visibility_timeout': float(os.environ['CELERIAC_TEST_VISIBILITY'])}
if os.environ.get('CELERIAC_TEST_TOPIC_QUEUE'):
    # "queue:exchange:binding key": a queue bound to a topic exchange of its own.
    from kombu import Exchange, Queue
    _name, _exchange, _key = os.environ['CELERIAC_TEST_TOPIC_QUEUE'].split(':')
    app.conf.task_queues = [Queue(_name, Exchange(_exchange, type='topic'), routing_key=_key)]


@app.task(name='py.mul')
def mul(a, b):
    return a * b


@app.task(name='py.stamp')
def stamp():
    """When it ran, in seconds since the epoch."""
    return time.time()


@app.task(name='shared.echo')
def echo(value):
    return value


@app.task(name='shared.slow')
def slow(value):
    """Long enough for a test to kill the worker running it."""
    time.sleep(60)
    return 'py:' + value


def calls(queue):
    """Values, keyword arguments and a re-raised TypeScript failure."""
    print(app.send_task('ts.add', args=[2, 3], queue=queue).get(timeout=30))
    print(app.send_task('ts.add', kwargs={'a': 10, 'b': 5}, queue=queue).get(timeout=30))
    try:
        app.send_task('ts.fail', args=['bad input'], queue=queue).get(timeout=30)
    except Exception as error:
        print(type(error).__name__, str(error))


def print_refusal(label, result):
    """Prints how a task that must not run ended: its exception and state, or that it ran."""
    try:
        result.get(timeout=30)
        print(label, 'ran anyway')
    except Exception as error:
        print(label, type(error).__name__, result.state)


def timing(queue):
    """Countdown and ETA are honoured; an expired task is revoked, not run."""
    sent = time.time()
    ran = app.send_task('ts.stamp', queue=queue, countdown=2).get(timeout=30)
    print('countdown', 'ok' if ran - sent >= 1.9 else 'early by %.3f s' % (sent + 2 - ran))
    eta = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    ran = app.send_task('ts.stamp', queue=queue, eta=eta).get(timeout=30)
    print('eta', 'ok' if ran >= eta.timestamp() - 0.05 else 'early by %.3f s' % (eta.timestamp() - ran))
    expired = app.send_task('ts.stamp', queue=queue, expires=datetime.now(timezone.utc) - timedelta(seconds=5))
    print_refusal('expires', expired)


def waiting_on(queue):
    """How many messages wait on `queue` (kombu's Redis transport knows no queue left empty)."""
    from kombu.exceptions import ChannelError
    with app.connection_for_write() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        except ChannelError:
            return 0


def wait_until_taken(queue, timeout=10):
    """Returns once no message waits on `queue`: a worker has taken what was sent."""
    deadline = time.time() + timeout
    while waiting_on(queue):
        if time.time() > deadline:
            raise RuntimeError('no worker took the task from %s within %s s' % (queue, timeout))
        time.sleep(0.02)  # a poll interval, not a wait for a fixed time


def revoke(queue):
    """`control.revoke` of a task a worker holds for its countdown: it never runs."""
    waiting = app.send_task('ts.stamp', queue=queue, countdown=3)
    wait_until_taken(queue)
    app.control.revoke(waiting.id)
    print_refusal('revoke', waiting)


def retries(queue):
    """A task that retries once: Python sees RETRY, then SUCCESS with the value."""
    seen = []
    result = app.send_task('ts.flaky', args=['x'], queue=queue)
    value = result.get(timeout=30, on_message=lambda meta: seen.append(meta['status']))
    print(' '.join(status for i, status in enumerate(seen) if i == 0 or seen[i - 1] != status))
    print(value)


def priorities(queue):
    """Sends three low, then three high priority tasks (priorities from argv) while no worker runs."""
    low, high = int(sys.argv[3]), int(sys.argv[4])
    for label, priority in [('low', low)] * 3 + [('high', high)] * 3:
        app.send_task('ts.record', args=[label], queue=queue, priority=priority)
    print('sent')


def routed(exchange):
    """Calls ts.add through an exchange with the routing key from argv, naming no queue.

    Celery declares its default queue on such a send; a queue of this call's own (deleted after)
    keeps it from clashing with a `celery` queue some other client declared with other arguments.
    """
    import uuid
    default_queue = f'celery-routed-{uuid.uuid4().hex[:8]}'
    app.conf.task_default_queue = default_queue
    try:
        print(app.send_task('ts.add', args=[2, 3], exchange=exchange, routing_key=sys.argv[3]).get(timeout=30))
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(default_queue)


if __name__ == '__main__':
    globals()[sys.argv[1]](sys.argv[2])
    sys.stdout.flush()
