"""Python Celery's side of celeriac's chord join interop test, on the Redis backend named by
CELERIAC_TEST_BACKEND (Celery's native join) and the broker named by CELERIAC_TEST_BROKER.

Each command does what a Python client or worker does for a chord whose body is the task
`ts.chord_body`, routed to the queue BODY_QUEUE:

- `size GROUP N`: records the header's size, as `chord.apply_async` does;
- `part GROUP TASK_ID INDEX STATE VALUE BODY_QUEUE`: a header member ends, as a worker reports it
  (`on_chord_part_return`); VALUE is JSON: the return value, or for FAILURE the message of the
  ValueError the member raised. When it is the last member, Celery sends the body;
- `race GROUP OFFSET STRIDE SIZE BODY_QUEUE`: prints `ready`, waits for a line on stdin, then
  ends the members OFFSET, OFFSET + STRIDE, ... below SIZE (task ids `t<index>`, values the
  indexes) one after another.
"""
import json
import os
import sys
from types import SimpleNamespace

from celery import Celery

app = Celery('chord_join', broker=os.environ['CELERIAC_TEST_BROKER'], backend=os.environ['CELERIAC_TEST_BACKEND'])


def size(group_id, n):
    app.backend.set_chord_size(group_id, int(n))


def part(group_id, task_id, index, state, value, body_queue):
    """Reports one member's end the way the worker's tracer does."""
    body = {'task': 'ts.chord_body', 'args': [], 'kwargs': {}, 'options': {'queue': body_queue},
            'subtask_type': None, 'immutable': False}
    request = SimpleNamespace(id=task_id, group=group_id, group_index=int(index), chord=body)
    result = json.loads(value)
    if state == 'FAILURE':
        result = ValueError(result)
    app.backend.on_chord_part_return(request, state, result)


def race(group_id, offset, stride, total, body_queue):
    print('ready', flush=True)
    sys.stdin.readline()
    for index in range(int(offset), int(total), int(stride)):
        part(group_id, 't%d' % index, index, 'SUCCESS', str(index), body_queue)


if __name__ == '__main__':
    globals()[sys.argv[1]](*sys.argv[2:])
