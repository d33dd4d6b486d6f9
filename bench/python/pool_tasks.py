"""The Python Celery side of the pool benchmark (bench/pools.ts): a no-op, and the CPU-bound task
counting primes by trial division with the same loop as bench/pool-tasks.js. The same task names.

Run with Debian's Celery only: /usr/bin/python3 -m celery -A pool_tasks worker --pool=prefork -c 2 -Q $BENCH_QUEUE ...
BENCH_BROKER / BENCH_BACKEND name the broker and result backend (Redis here).
"""
import os
import time

from celery import Celery

app = Celery('pool_tasks', broker=os.environ['BENCH_BROKER'], backend=os.environ['BENCH_BACKEND'])
app.conf.update(
    task_serializer='json',
    result_serializer='json',
    accept_content=['json'],
    task_default_queue=os.environ['BENCH_QUEUE'],
)


@app.task(name='bench.noop')
def noop():
    return None


@app.task(name='bench.primes')
def primes(below):
    """Counts the primes below `below` by trial division; returns [count, milliseconds it took]."""
    started = time.perf_counter()
    count = 0
    for n in range(2, below):
        prime = True
        d = 2
        while d * d <= n:
            if n % d == 0:
                prime = False
                break
            d += 1
        if prime:
            count += 1
    return [count, (time.perf_counter() - started) * 1000]
