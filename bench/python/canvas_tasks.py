"""The Python Celery side of the canvas benchmark (bench/canvas.ts): bench_tasks' app, noop and
probe, plus a chain step and a chord body. The same task names as bench/canvas-tasks.js.

Run with Debian's Celery only: /usr/bin/python3 -m celery -A canvas_tasks worker -Q $BENCH_QUEUE ...
BENCH_BROKER / BENCH_BACKEND name the broker and result backend (Redis here); BENCH_QUEUE the
queue every task goes to, the chain steps and chord bodies the worker sends included.
"""
import os

from bench_tasks import app, noop, probe  # noqa: F401 (registers them on the app)

app.conf.task_default_queue = os.environ['BENCH_QUEUE']


@app.task(name='bench.inc')
def inc(n):
    return n + 1


@app.task(name='bench.count')
def count(results):
    return len(results)
