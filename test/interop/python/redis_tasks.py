"""A Python Celery app on the Redis broker and backend, for celeriac's interop tests."""
import os
import sys

from celery import Celery

app = Celery('redis_tasks', broker=os.environ['CELERIAC_TEST_REDIS'], backend=os.environ['CELERIAC_TEST_REDIS'])
app.conf.task_acks_late = True


@app.task(name='py.mul')
def mul(a, b):
    return a * b


@app.task(name='shared.echo')
def echo(value):
    return value


def client(queue):
    """Calls celeriac's tasks from Python and prints what comes back, one line each."""
    print(app.send_task('ts.add', args=[2, 3], queue=queue).get(timeout=30))
    print(app.send_task('ts.add', kwargs={'a': 10, 'b': 5}, queue=queue).get(timeout=30))
    try:
        app.send_task('ts.fail', args=['bad input'], queue=queue).get(timeout=30)
    except Exception as error:  # the re-raised TypeScript failure
        print(type(error).__name__, str(error))
    sys.stdout.flush()


if __name__ == '__main__':
    client(sys.argv[1])
