"""Task messages exactly as Python Celery publishes them, for celeriac's golden decode tests.

Each case calls Celery's own apply_async/send_task against kombu's in-memory transport and reads
the raw message back off the queue: headers, properties, content type and the body bytes as
Celery serialized them. `expect` says what a correct decoder must make of it.

Run: /usr/bin/python3 generate_messages.py > messages.json
"""
import base64
import datetime
import decimal
import json
import sys
import uuid
import zlib

from celery import Celery, chain


def add_numbers(a, b):
    return a + b


def echo_all(*args, **kwargs):
    return args


def make_app(protocol):
    app = Celery('golden', broker='memory://', backend='cache+memory://')
    app.conf.task_default_queue = 'golden'
    app.conf.task_protocol = protocol
    app.task(name='golden.add')(add_numbers)
    app.task(name='golden.echo')(echo_all)
    return app


app = make_app(2)
add = app.tasks['golden.add']
echo = app.tasks['golden.echo']


def capture(send, app=app):
    """Runs `send` (which publishes one task) and returns the raw message it published."""
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue('golden')
        queue.clear()
        result = send()
        message = queue.get(timeout=2)
        queue.close()
    return result.id, message


def case(name, send, expect, app=app):
    result_id, message = capture(send, app)
    headers = dict(message.headers)
    # The message's own id: a chain's result is its last task, but the first one is sent.
    message_id = headers.get('id') or json.loads(message.body)['id']
    if 'chain' not in expect:
        assert message_id == result_id, (message_id, result_id)
    expect = dict(expect, id=message_id)
    body = message.body
    if headers.get('compression'):
        # kombu hands back the inflated body; deflate it again as Celery sent it (zlib.compress).
        body = zlib.compress(body)
    return {
        'name': name,
        'headers': headers,
        'properties': {k: v for k, v in message.properties.items() if k != 'delivery_info'},
        'content_type': message.content_type,
        'content_encoding': message.content_encoding,
        'body_base64': base64.b64encode(body).decode(),
        'expect': expect,
    }


def main():
    when = datetime.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc)
    cases = [
        case('plain args and kwargs', lambda: add.apply_async((2, 3), {}),
             {'task': 'golden.add', 'args': [2, 3], 'kwargs': {}, 'retries': 0, 'timelimit': [None, None]}),
        case('kwargs, unicode and nesting', lambda: echo.apply_async((), {'name': 'Zoë ☃', 'nested': {'a': [1, None, True]}}),
             {'task': 'golden.echo', 'args': [], 'kwargs': {'name': 'Zoë ☃', 'nested': {'a': [1, None, True]}}}),
        case('eta and expires as dates', lambda: add.apply_async((1, 1), eta=when, expires=when + datetime.timedelta(hours=1)),
             {'task': 'golden.add', 'eta': '2030-01-02T03:04:05.678Z', 'expires': '2030-01-02T04:04:05.678Z'}),
        case('time limits are [hard, soft]', lambda: add.apply_async((1, 2), time_limit=30, soft_time_limit=20),
             {'task': 'golden.add', 'timelimit': [30, 20]}),
        case('priority and retries header', lambda: add.apply_async((1, 2), priority=7, retries=4),
             {'task': 'golden.add', 'priority': 7, 'retries': 4}),
        case('link and link_error callbacks', lambda: add.apply_async((1, 2), link=add.s(10), link_error=echo.si('failed')),
             {'task': 'golden.add', 'callbacks': ['golden.add'], 'errbacks': ['golden.echo']}),
        case('chain embed, reversed', lambda: chain(add.s(1, 2), add.s(3), echo.s()).apply_async(),
             {'task': 'golden.add', 'args': [1, 2], 'chain': ['golden.echo', 'golden.add']}),
        case('send_task by name with group', lambda: app.send_task('py.only.here', args=[1], kwargs={'k': 'v'}, group_id='grp', group_index=3),
             {'task': 'py.only.here', 'args': [1], 'kwargs': {'k': 'v'}, 'group': 'grp', 'group_index': 3}),
        case('datetime, Decimal and UUID values (kombu 5.2 writes strings)',
             lambda: echo.apply_async((when, decimal.Decimal('1.50'), uuid.UUID('12345678123456781234567812345678')), {}),
             {'task': 'golden.echo', 'args': ['2030-01-02T03:04:05.678901Z', '1.50', '12345678-1234-5678-1234-567812345678']}),
        case('zlib compression', lambda: add.apply_async((40, 2), compression='zlib'),
             {'task': 'golden.add', 'args': [40, 2]}),
    ]
    v1 = make_app(1)
    cases.append(case('protocol 1', lambda: v1.tasks['golden.echo'].apply_async((5, 6), {'z': 1}, countdown=60, retries=1),
                      {'task': 'golden.echo', 'args': [5, 6], 'kwargs': {'z': 1}, 'retries': 1, 'has_eta': True}, v1))
    json.dump(cases, sys.stdout, indent=1, ensure_ascii=False, default=str)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
