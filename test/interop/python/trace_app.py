"""Trace context between celeriac and Python Celery, where opentelemetry-instrumentation-celery
carries it: W3C `traceparent`/`tracestate` in the message headers. Its publish hook
(before_task_publish) injects them into the `headers` dict Celery publishes; its worker hook
(task_prerun) reads them back as attributes of `task.request`, where Celery puts message headers.
The OpenTelemetry packages are not needed to show both ends: this module does what the hooks do
with the headers, on the broker and backend named by CELERIAC_TEST_BROKER and _BACKEND.

Run as a script: `trace_app.py produce QUEUE TRACEPARENT TRACESTATE` sends celeriac's `ts.traced`
with that context injected as the instrumentation would, and prints its result."""
import os
import sys

from celery import Celery
from celery.signals import before_task_publish

app = Celery('trace_app', broker=os.environ['CELERIAC_TEST_BROKER'], backend=os.environ['CELERIAC_TEST_BACKEND'])

_INJECT = {}


@before_task_publish.connect
def inject(headers=None, **_kwargs):
    """As the instrumentation's _trace_before_publish: propagate.inject(headers)."""
    if headers is not None:
        headers.update(_INJECT)


@app.task(name='py.trace_context', bind=True)
def trace_context(self):
    """What the instrumentation's CeleryGetter reads: getattr(task.request, key)."""
    return [getattr(self.request, 'traceparent', None), getattr(self.request, 'tracestate', None)]


def produce(queue):
    _INJECT.update({'traceparent': sys.argv[3], 'tracestate': sys.argv[4]})
    print(app.send_task('ts.traced', args=[], queue=queue).get(timeout=30))


if __name__ == '__main__':
    globals()[sys.argv[1]](sys.argv[2])
