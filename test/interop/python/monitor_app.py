"""A Python Celery app for celeriac's monitoring interop tests, on CELERIAC_TEST_BROKER.

Run as a script, it is a monitor or a controller:
  monitor_app.py capture SECONDS      events for SECONDS into a State; prints one JSON summary
  monitor_app.py control NODE METHOD [JSON-ARGS]   app.control.broadcast(..., reply=True); prints the replies as JSON
"""
import json
import os
import sys
import threading

from celery import Celery

app = Celery('monitor_app', broker=os.environ['CELERIAC_TEST_BROKER'], backend=os.environ.get('CELERIAC_TEST_BACKEND'))


@app.task(name='mon.py_add')
def py_add(a, b):
    return a + b


def capture(seconds):
    state = app.events.State()
    with app.connection() as connection:
        receiver = app.events.Receiver(connection, handlers={'*': state.event})
        timer = threading.Timer(seconds, lambda: setattr(receiver, 'should_stop', True))
        timer.start()
        receiver.capture(limit=None, timeout=None, wakeup=True)
    workers = {name: {'alive': worker.alive, 'sw_ident': worker.sw_ident, 'active': worker.active, 'processed': worker.processed}
               for name, worker in state.workers.items()}
    tasks = {uuid: {'state': task.state, 'name': task.name, 'result': task.result, 'worker': task.worker.hostname if task.worker else None,
                    'exception': task.exception, 'args': task.args}
             for uuid, task in state.tasks.items()}
    print(json.dumps({'workers': workers, 'tasks': tasks}))


def control(node, method, arguments):
    replies = app.control.broadcast(method, arguments=arguments, destination=[node], reply=True, timeout=3, limit=1)
    print(json.dumps(replies))


if __name__ == '__main__':
    if sys.argv[1] == 'capture':
        capture(float(sys.argv[2]))
    elif sys.argv[1] == 'control':
        control(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
    else:
        sys.exit('unknown scenario ' + sys.argv[1])
