"""Reads task messages celeriac encoded and reports what Python Celery's worker makes of them.

Input (stdin): a JSON list of {headers, properties, content_type, content_encoding, body_base64}.
Output (stdout): a JSON list, one entry per message, built from celery.worker.request.Request,
the object a Celery worker runs a task from.

Modes: `messages` (default); `exceptions` reads exception dicts and reports the exception Celery
rebuilds; `prepare` reads [[type, message], ...] and prints the dicts Celery stores for them.
"""
import base64
import json
import sys

from celery import Celery
from celery.worker.request import Request
from kombu.message import Message

app = Celery('golden-check', broker='memory://', backend='cache+memory://')


class CustomError(Exception):
    pass


def accept_anything(*args, **kwargs):
    return None


def iso(value):
    return value.isoformat() if value is not None else None


def check_message(raw):
    name = raw['headers'].get('task')
    if name not in app.tasks:
        app.task(name=name)(accept_anything)
    message = Message(
        body=base64.b64decode(raw['body_base64']),
        content_type=raw['content_type'],
        content_encoding=raw['content_encoding'],
        properties=raw['properties'],
        headers=raw['headers'],
        delivery_info={'exchange': '', 'routing_key': 'celery'},
        channel=None,
    )
    request = Request(message, app=app, task=app.tasks[name])
    args, kwargs, embed = message.decode()
    return {
        'id': request.id,
        'name': request.name,
        'args': list(request.args),
        'kwargs': request.kwargs,
        'eta': iso(request.eta) if request.eta else None,
        'expires': iso(request.expires) if request.expires else None,
        'time_limits': list(request.time_limits),
        'retries': request.request_dict.get('retries'),
        'root_id': request.root_id,
        'parent_id': request.parent_id,
        'group': request.request_dict.get('group'),
        'group_index': request.request_dict.get('group_index'),
        'argsrepr': request.argsrepr,
        'kwargsrepr': request.kwargsrepr,
        'callbacks': [s['task'] for s in (embed or {}).get('callbacks') or []],
        'chain': [s['task'] for s in (embed or {}).get('chain') or []],
        'correlation_id': message.properties.get('correlation_id'),
    }


def check_exception(data):
    exc = app.backend.exception_to_python(data)
    return {'type': type(exc).__name__, 'module': type(exc).__module__, 'text': str(exc)}


BUILTIN = {'ValueError': ValueError, 'KeyError': KeyError, 'CustomError': CustomError}


def prepare(pair):
    kind, text = pair
    return app.backend.prepare_exception(BUILTIN[kind](text))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else 'messages'
    items = json.load(sys.stdin)
    handler = {'messages': check_message, 'exceptions': check_exception, 'prepare': prepare}[mode]
    json.dump([handler(item) for item in items], sys.stdout, default=str)


if __name__ == '__main__':
    main()
