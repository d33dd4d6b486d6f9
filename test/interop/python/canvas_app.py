"""A Python Celery app for celeriac's canvas interop tests, on the broker named by
CELERIAC_TEST_BROKER and the Redis result backend named by CELERIAC_TEST_BACKEND (chords need a
backend that joins them, so both brokers use Redis results here).

As a worker (`celery -A canvas_app worker`) it runs the `py.*` tasks, and the `shared.*` tasks
celeriac defines too. Run as a script, it is a client: `canvas_app.py SCENARIO ARGS...` builds a
workflow of celeriac's tasks (or reads celeriac's results) and prints one line per observation,
for the test to compare. TypeScript tasks are named by string (`app.signature('ts.add', ...)`),
as a Python user names tasks defined in another code base."""
import json
import os
import sys

import redis
from celery import Celery, chain, chord, group
from celery.canvas import chunks, xmap, xstarmap
from celery.result import AsyncResult, GroupResult, result_from_tuple

app = Celery('canvas_app', broker=os.environ['CELERIAC_TEST_BROKER'], backend=os.environ['CELERIAC_TEST_BACKEND'])
app.conf.task_acks_late = True
app.conf.worker_prefetch_multiplier = 1
# On RabbitMQ, a solo-pool worker of Debian's Celery 5.2.6 (kombu 5.2.4, py-amqp 5.1.1) now and then
# leaves a message RabbitMQ has delivered to it unprocessed until its event loop next wakes, up to
# 10 s later; workflows, whose tasks publish to the worker's own queue, hit it often. AMQP
# heartbeats every 2 s wake the loop every second. (Pure Celery shows it too, without celeriac.)
app.conf.broker_heartbeat = 2

_redis = redis.Redis.from_url(os.environ['CELERIAC_TEST_BACKEND'])


@app.task(name='py.add')
def add(a, b):
    return a + b


@app.task(name='py.mul')
def mul(a, b):
    return a * b


@app.task(name='py.tsum')
def tsum(values):
    return sum(values)


@app.task(name='py.fail')
def fail(why):
    raise ValueError('refused: %s' % (why,))


@app.task(name='py.record_error')
def record_error(task_id):
    """An error callback of the old style (one argument), which Celery sends as a task with the
    failed task's id. Counts its calls per failed task, for the test to check it ran once."""
    _redis.incr('canvas-errback-' + task_id)
    return task_id


@app.task(name='shared.double')
def double(value):
    return 2 * value


@app.task(name='shared.collect')
def collect(values, counter):
    """A chord body both languages define: counts its runs in Redis under `counter`."""
    _redis.incr(counter)
    return values


def sig(name, queue, *args, **options):
    """A signature of a task known by name (celeriac's, or this module's), routed to `queue`."""
    return app.signature(name, args=args, queue=queue, **options)


def show(value):
    print(json.dumps(value))


def failure(result, timeout=10):
    """How a result that must fail ended: its state and the type of its stored exception.
    Without follow_parents=False, `get` would re-raise a failed parent's exception (a chain's
    failed step, a chord's failed member) before this result's own is stored."""
    stored = result.get(timeout=timeout, propagate=False, follow_parents=False)
    return '%s %s' % (result.state, type(stored).__name__)


# Python builds workflows of celeriac tasks (the TypeScript worker consumes QUEUE).

def chain_steps(queue):
    r = chain(sig('ts.add', queue, 1, 2), sig('ts.add', queue, 3), sig('ts.add', queue, 4)).apply_async()
    show(r.get(timeout=10))
    show(r.parent.get(timeout=10))


def group_members(queue):
    show(group(sig('ts.add', queue, i, i) for i in range(5)).apply_async().get(timeout=10))


def chord_body(queue):
    show(chord([sig('ts.add', queue, i, i) for i in range(1, 4)], sig('ts.tsum', queue)).apply_async().get(timeout=10))


def group_in_chain(queue):
    """A group followed by a step: Celery turns it into a chord, which celeriac's worker applies."""
    r = chain(sig('ts.add', queue, 1, 1), group(sig('ts.add', queue, 1), sig('ts.add', queue, 2)), sig('ts.tsum', queue)).apply_async()
    show(r.get(timeout=10))


def links(queue):
    """link= gets the result; link_error= gets the failed task's id."""
    callback = sig('ts.add', queue, 10, task_id='cb-' + sys.argv[3])
    r = app.send_task('ts.add', args=[1, 2], queue=queue, link=callback)
    show([r.get(timeout=10), AsyncResult(callback.id, app=app).get(timeout=10)])
    errback = sig('ts.record_error', queue, task_id='eb-' + sys.argv[3])
    failed = app.send_task('ts.fail', args=['no'], queue=queue, link_error=errback)
    print(failure(failed))
    print('errback got the failed id' if AsyncResult(errback.id, app=app).get(timeout=10) == failed.id else 'errback got another id')


def chord_failure(queue):
    """A failing member: the body ends FAILURE with ChordError and its errback gets the body's id."""
    errback = sig('ts.record_error', queue, task_id='eb-' + sys.argv[3])
    body = sig('ts.tsum', queue).on_error(errback)
    r = chord([sig('ts.add', queue, 1, 1), sig('ts.fail', queue, 'member'), sig('ts.add', queue, 2, 2)], body).apply_async()
    print(failure(r))
    print('errback got the body id' if AsyncResult(errback.id, app=app).get(timeout=10) == r.id else 'errback got another id')


def chain_failure(queue):
    r = chain(sig('ts.add', queue, 1, 2), sig('ts.fail', queue), sig('ts.add', queue, 4)).apply_async()
    print(failure(r))


def map_family(queue):
    """celery.map, celery.starmap and chunks (a group of celery.starmap) on celeriac's built-ins."""
    show(xmap(app.signature('shared.double'), [1, 2, 3]).apply_async(queue=queue).get(timeout=10))
    show(xstarmap(app.signature('ts.add'), [(1, 2), (3, 4)]).apply_async(queue=queue).get(timeout=10))
    show(chunks(app.signature('ts.add'), zip(range(6), range(6)), 2).apply_async(queue=queue).get(timeout=10))


# Mixed workflows: ts.* steps go to TS_QUEUE, py.* steps to PY_QUEUE.

def mixed_chain(ts_queue):
    py_queue = sys.argv[3]
    r = chain(sig('ts.add', ts_queue, 1, 2), sig('py.mul', py_queue, 10), sig('ts.add', ts_queue, 5), sig('py.add', py_queue, 1)).apply_async()
    show([r.get(timeout=10), r.parent.get(timeout=10)])


def mixed_chord(ts_queue):
    """Header members on both sides; the body (BODY_TASK on BODY_QUEUE) on either."""
    py_queue, body_task, body_queue = sys.argv[3:6]
    header = [sig('ts.add', ts_queue, 1, 1), sig('py.add', py_queue, 2, 2), sig('ts.add', ts_queue, 3, 3), sig('py.mul', py_queue, 2, 5)]
    show(chord(header, sig(body_task, body_queue)).apply_async().get(timeout=10))


# Results read across languages.

def restore_group(group_id):
    """The member ids of a group celeriac saved."""
    show([r.id for r in GroupResult.restore(group_id, app=app).results])


def save_group(queue):
    """Saves a group of Python tasks; prints its id and member ids for celeriac to restore."""
    r = group(add.s(i, i).set(queue=queue) for i in range(3)).apply_async()
    r.save()
    show({'id': r.id, 'members': [m.id for m in r.results]})


def read_chain(result_tuple):
    """A chain celeriac ran, from its result tuple: each step's value, and the first step's
    children as celeriac's worker stored them."""
    r = result_from_tuple(json.loads(result_tuple), app)
    first = r.parent
    show({'value': r.get(timeout=10), 'parent': first.get(timeout=10), 'state': r.state,
          'children': [c.id for c in AsyncResult(first.id, app=app).children or []]})


def python_chain(queue):
    """Runs a chain of Python tasks; prints the ids of its steps, first first."""
    r = chain(add.s(1, 2).set(queue=queue), add.s(3).set(queue=queue), add.s(4).set(queue=queue)).apply_async()
    r.get(timeout=10)
    show([r.parent.parent.id, r.parent.id, r.id])


if __name__ == '__main__':
    globals()[sys.argv[1]](sys.argv[2])
    sys.stdout.flush()
