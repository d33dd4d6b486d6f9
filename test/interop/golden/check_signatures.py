"""Reads signature dicts celeriac wrote and reports what Python Celery rebuilds from them.

Input (stdin): a JSON list of signature dicts.
Output (stdout): a JSON list, one entry per dict, from `celery.canvas.maybe_signature` (which a
worker uses on callbacks and chain steps): the class Celery picked, its task, args, kwargs,
options and immutability; for containers, the task names of their members; for chains, also
the steps Celery would send once it prepares the chain (`steps`, as `class:task`, first step
first), where a group followed by a step has become a chord.
"""
import json
import sys

from celery import Celery
from celery.canvas import _chain, _chord, group, maybe_signature
from kombu.utils import json as kombu_json

app = Celery('golden-check', broker='memory://', backend='cache+memory://')


def members(sig):
    if isinstance(sig, (_chain, group)):
        return [task.task for task in sig.tasks]
    if isinstance(sig, _chord):
        return {'header': [task.task for task in sig.tasks], 'body': sig.body.task}
    return None


def prepared_steps(sig):
    """What Celery's chain.apply_async would send: the steps after prepare_steps, first first."""
    steps, _results = sig.prepare_steps((), {}, sig.tasks, app=app)
    return [f'{type(step).__name__}:{step.task}' for step in reversed(steps)]


def view(raw):
    sig = maybe_signature(raw, app=app)
    report = {
        'type': type(sig).__name__,
        'task': sig.task,
        'args': list(sig.args),
        'kwargs': json.loads(kombu_json.dumps(sig.kwargs)),
        'options': json.loads(kombu_json.dumps(sig.options)),
        'immutable': sig.immutable,
        'members': members(sig),
    }
    if isinstance(sig, _chain):
        # Last: preparing freezes the steps in place (ids, reply_to), which the report must not show.
        report['steps'] = prepared_steps(sig)
    return report


def main():
    json.dump([view(raw) for raw in json.load(sys.stdin)], sys.stdout, ensure_ascii=False)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
