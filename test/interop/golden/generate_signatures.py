"""Signature dicts exactly as Python Celery builds them, for celeriac's signature codec tests.

Two sections:

- `signatures`: one case per canvas construction. `dict` is what Celery serializes
  (`json.loads(json.dumps(sig))` through kombu's json), `celeriac` says how the same thing is
  written in TypeScript; test/unit/signature-codec.test.ts builds it under the case's name.
- `embeds`: the `embed` (third body element) of task messages Celery really publishes for
  workflows, read back off kombu's in-memory transport, with the message's own id. These are
  what a worker's `checkEmbed` must accept.

Run: /usr/bin/python3 generate_signatures.py > signatures.json
"""
import datetime
import json
import sys

from celery import Celery, chain, chord, group
from celery.canvas import xmap, xstarmap
from kombu.utils import json as kombu_json


def add_numbers(a, b):
    return a + b


def total(numbers):
    return sum(numbers)


def greeting(name, excited=False):
    return f'hi {name}'


app = Celery('golden', broker='memory://', backend='cache+memory://')
app.conf.task_default_queue = 'golden'
app.task(name='golden.add')(add_numbers)
app.task(name='golden.tsum')(total)
app.task(name='golden.greet')(greeting)
add = app.tasks['golden.add']
tsum = app.tasks['golden.tsum']
greet = app.tasks['golden.greet']


def as_wire(sig):
    """The dict a signature travels as: kombu's json, read back."""
    return json.loads(kombu_json.dumps(sig))


def linked():
    sig = add.s(1, 2)
    sig.link(add.s(10))
    sig.on_error(greet.si('failed'))
    return sig


def signature_cases():
    expires_at = datetime.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    cases = [
        ('partial', 'add.s(3)', add.s(3)),
        ('complete', 'add.s(2, 3)', add.s(2, 3)),
        ('immutable', 'add.si(1, 2)', add.si(1, 2)),
        ('kwargs', "app.signature('golden.add', [1], { b: 2 })", add.s(1, b=2)),
        ('by name with options', "app.signature('py.only.here', [1], { k: 'v' }, { queue: 'elsewhere' })",
         app.signature('py.only.here', (1,), {'k': 'v'}, queue='elsewhere')),
        ('set options', "add.s(1, 2).set({ countdown: 5, queue: 'q', priority: 3, expires: 10 })",
         add.s(1, 2).set(countdown=5, queue='q', priority=3, expires=10)),
        ('set expires date', "add.s(1, 2).set({ expires: new Date('2030-01-02T03:04:05.678Z') })",
         add.s(1, 2).set(expires=expires_at)),
        ('link and link_error', "add.s(1, 2).link(add.s(10)).linkError(greet.si('failed'))", linked()),
        ('chain', 'chain(add.s(1, 2), add.s(3))', chain(add.s(1, 2), add.s(3))),
        ('pipe', 'add.s(1, 2).pipe(add.s(3))', add.s(1, 2) | add.s(3)),
        ('pipe onto chain', 'add.s(1, 2).pipe(add.s(3)).pipe(add.s(4))', add.s(1, 2) | add.s(3) | add.s(4)),
        ('group', "group(add.s(1, 1), greet.s('x'))", group(add.s(1, 1), greet.s('x'))),
        ('chord', 'chord([add.s(1, 1), add.s(2, 2)], tsum.s())', chord([add.s(1, 1), add.s(2, 2)], tsum.s())),
        ('chord with group header', 'chord(group(add.s(1, 1), add.s(2, 2)), tsum.s())',
         chord(group(add.s(1, 1), add.s(2, 2)), tsum.s())),
        # Celery turns a group followed by a step into a chord when the chain is built; celeriac
        # does it when the chain is applied, so the same dict is written with chord() here.
        ('chain with group then step', 'chain(add.s(1, 2), chord([add.s(1), add.s(2)], tsum.s()))',
         chain(add.s(1, 2), group(add.s(1), add.s(2)), tsum.s())),
        ('chain ending in group', 'chain(add.s(1, 2), group(add.s(1), add.s(2)))',
         chain(add.s(1, 2), group(add.s(1), add.s(2)))),
        ('chain in group', 'group(chain(add.s(1, 2), add.s(3)), add.s(4, 4))',
         group(chain(add.s(1, 2), add.s(3)), add.s(4, 4))),
        ('map', 'map(add.s(), [[1, 2], [3, 4]])', add.map([[1, 2], [3, 4]])),
        ('xmap', 'map(tsum.s(), [[1], [2, 3]])', xmap(tsum.s(), [[1], [2, 3]])),
        ('starmap', 'starmap(add.s(), [[1, 2], [3, 4]])', xstarmap(add.s(), [[1, 2], [3, 4]])),
        # Celery's chunks signature is sent as the group of starmaps it expands to; celeriac's
        # chunks() builds that group directly.
        ('chunks', 'chunks(add.s(), [[1, 2], [3, 4], [5, 6]], 2)', add.chunks([[1, 2], [3, 4], [5, 6]], 2).group()),
    ]
    result = [{'name': name, 'celeriac': celeriac, 'dict': as_wire(sig)} for name, celeriac, sig in cases]
    # Celery's own chunks dict (not something celeriac builds) must still be read back.
    result.append({'name': 'chunks as Celery sends it', 'celeriac': None,
                   'dict': as_wire(add.chunks([[1, 2], [3, 4], [5, 6]], 2))})
    return result


def capture(send):
    """Runs `send` (which publishes) and returns the first message it put on the queue."""
    with app.connection_for_write() as conn:
        queue = conn.SimpleQueue('golden')
        queue.clear()
        send()
        message = queue.get(timeout=2)
        queue.clear()
        queue.close()
    return message


def embed_case(name, send):
    message = capture(send)
    _args, _kwargs, embed = json.loads(message.body)
    return {'name': name, 'id': message.headers['id'], 'task': message.headers['task'], 'embed': embed}


def embed_cases():
    return [
        embed_case('link and link_error', lambda: add.apply_async((1, 2), link=add.s(10), link_error=greet.si('failed'))),
        embed_case('chain', lambda: chain(add.s(1, 2), add.s(3), tsum.s()).apply_async()),
        embed_case('chord header member', lambda: chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()),
        embed_case('chord in chain', lambda: chain(add.s(1, 2), chord([add.s(1), add.s(2)], tsum.s()), add.s(5)).apply_async()),
        embed_case('chain in chord header', lambda: chord([chain(add.s(1, 2), add.s(3)), add.s(4, 4)], tsum.s()).apply_async()),
        embed_case('chain in group', lambda: group(chain(add.s(1, 2), add.s(3), add.s(4))).apply_async()),
    ]


def main():
    json.dump({'signatures': signature_cases(), 'embeds': embed_cases()}, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
