"""Python Celery producer for bench/canvas.ts. Prints one JSON object on stdout.

  canvas_produce.py group N TIMEOUT [TIMES]   group of N no-ops: build and send -> every result
  canvas_produce.py chord N TIMEOUT [TIMES]   chord of N no-op members, body bench.count -> its result
  canvas_produce.py chain N TIMEOUT [TIMES]   chain of N bench.inc steps from 0 -> the last result
  canvas_produce.py latency N TIMEOUT         N probes on an idle worker, one at a time -> {"ms": [...]}

The workflows run TIMES times (default 1), one after another -> {"seconds": their total}. Each
clock starts before the workflow is built, as bench/canvas.ts does for celeriac; interpreter start
is left out. A workflow that does not finish within TIMEOUT seconds, or ends with a wrong result,
fails the script (non-zero exit, traceback on stderr).
"""
import json
import os
import sys
import time

from celery import chain, chord, group

from canvas_tasks import count, inc, noop
from produce import latency


def group_run(n, timeout):
    finished = []
    started = time.perf_counter()
    result = group(noop.s() for _ in range(n)).apply_async()
    # GroupResult.get is join_native on Redis: it polls MGET every `interval` and sleeps once more
    # after the last result. The callback times the moment the last result was read instead, and
    # a short interval keeps that moment close to when the result was stored.
    result.join_native(timeout=timeout, interval=0.1, callback=lambda task_id, value: finished.append(time.perf_counter()))
    if len(finished) != n:
        raise RuntimeError(f'the group returned {len(finished)} results, not {n}')
    return finished[-1] - started


def timed(n, timeout, build):
    started = time.perf_counter()
    value = build().apply_async().get(timeout=timeout)
    seconds = time.perf_counter() - started
    if value != n:
        raise RuntimeError(f'the workflow returned {value!r}, not {n}')
    return seconds


def chord_run(n, timeout):
    return timed(n, timeout, lambda: chord((noop.s() for _ in range(n)), count.s()))


def chain_run(n, timeout):
    return timed(n, timeout, lambda: chain(inc.s(0), *(inc.s() for _ in range(n - 1))))


if __name__ == '__main__':
    mode, size, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    if mode == 'latency':
        print(json.dumps(latency(size, os.environ['BENCH_QUEUE'])))
    else:
        run = {'group': group_run, 'chord': chord_run, 'chain': chain_run}[mode]
        times = int(sys.argv[4]) if len(sys.argv) > 4 else 1
        print(json.dumps({'seconds': sum(run(size, limit) for _ in range(times))}))
