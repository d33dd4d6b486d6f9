"""Python Celery on CELERIAC_TEST_BROKER for celeriac's event transport interop tests: a worker
app that sends events (`celery -A event_transport worker -E`), and scripts.

  event_transport.py receive HOSTNAME COUNT SECONDS [PATTERN]
      Binds Python's EventReceiver with routing key PATTERN (default '#'), prints "ready", then one
      JSON line per event from HOSTNAME as it decodes them (other hosts' events on the broker are
      ignored), until COUNT of them or SECONDS; then "state" and a JSON summary of a State fed
      with them: the workers (alive, sw_ident, freq) and the tasks (state, name, result).
  event_transport.py send QUEUE
      Sends ev.add(2, 3) to QUEUE and prints its id.
"""
import json
import os
import sys
import threading

from celery import Celery

app = Celery('event_transport', broker=os.environ['CELERIAC_TEST_BROKER'])


@app.task(name='ev.add')
def add(a, b):
    return a + b


def receive(hostname, count, seconds, pattern):
    state = app.events.State()
    seen = []

    class Receiver(app.events.Receiver):
        def on_consume_ready(self, connection, channel, consumers, **kwargs):
            super().on_consume_ready(connection, channel, consumers, **kwargs)
            print('ready', flush=True)

    def on_event(event):
        if event.get('hostname') != hostname:
            return
        state.event(event)
        seen.append(event)
        print(json.dumps(event), flush=True)
        if len(seen) >= count:
            receiver.should_stop = True

    with app.connection() as connection:
        receiver = Receiver(connection, handlers={'*': on_event}, routing_key=pattern)
        timer = threading.Timer(seconds, lambda: setattr(receiver, 'should_stop', True))
        timer.start()
        receiver.capture(limit=None, timeout=None, wakeup=False)
        timer.cancel()
    workers = {name: {'alive': worker.alive, 'sw_ident': worker.sw_ident, 'freq': worker.freq} for name, worker in state.workers.items()}
    tasks = {uuid: {'state': task.state, 'name': task.name, 'result': task.result} for uuid, task in state.tasks.items()}
    print('state', flush=True)
    print(json.dumps({'workers': workers, 'tasks': tasks}), flush=True)


if __name__ == '__main__':
    if sys.argv[1] == 'receive':
        receive(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else '#')
    elif sys.argv[1] == 'send':
        print(app.send_task('ev.add', args=[2, 3], queue=sys.argv[2]).id)
    else:
        sys.exit(f'unknown scenario {sys.argv[1]}')
