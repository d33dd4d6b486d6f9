"""The Python Celery side of the AMQP benchmark (bench/amqp.ts): a no-op task and a probe.

Run with Debian's Celery only: /usr/bin/python3 -m celery -A bench_tasks worker ...
BENCH_BROKER / BENCH_BACKEND name the broker and result backend; BENCH_CONFIRM=1 turns on
publisher confirms for producers (off by default in Celery, as here).
"""
import os
import time

from celery import Celery

app = Celery(
    'bench_tasks',
    broker=os.environ.get('BENCH_BROKER', 'amqp://guest:guest@127.0.0.1:5672//'),
    backend=os.environ.get('BENCH_BACKEND', 'redis://127.0.0.1:6379/12'),
)
app.conf.update(
    task_serializer='json',
    result_serializer='json',
    accept_content=['json'],
    broker_transport_options={'confirm_publish': os.environ.get('BENCH_CONFIRM') == '1'},
)


@app.task(name='bench.noop')
def noop():
    return None


@app.task(name='bench.probe')
def probe(i):
    """Returns when it started (epoch seconds), for the enqueue->start latency."""
    return time.time()
