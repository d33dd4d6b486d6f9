"""Python Celery producer for bench/amqp.ts. Prints one JSON object on stdout.

  produce.py enqueue N QUEUE   N apply_async calls one after another -> {"rate": msgs/s}
  produce.py fill N QUEUE      N no-op tasks, as fast as one producer goes -> {"rate": ...}
  produce.py latency N QUEUE   N probes on an idle worker, one at a time -> {"ms": [...]}
"""
import json
import sys
import time

from bench_tasks import app, noop, probe


def enqueue(n, queue):
    started = time.perf_counter()
    for _ in range(n):
        noop.apply_async(queue=queue)
    return {'rate': n / (time.perf_counter() - started)}


def fill(n, queue):
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            noop.apply_async(queue=queue, producer=producer)
    return {'rate': n / (time.perf_counter() - started)}


def latency(n, queue):
    probe.apply_async((-1,), queue=queue).get(timeout=60)  # the worker is up
    samples = []
    for i in range(n):
        sent = time.time()
        began = probe.apply_async((i,), queue=queue).get(timeout=30)
        samples.append((began - sent) * 1000)
        time.sleep(0.002)
    return {'ms': samples}


if __name__ == '__main__':
    mode, count, queue = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps({'enqueue': enqueue, 'fill': fill, 'latency': latency}[mode](count, queue)))
