"""gunicorn configuration of the documented deployment (docs/deployment.md).

    gunicorn -c example_project/gunicorn.conf.py example_project.wsgi

A token request spends almost all of its time waiting for OpenAI (hundreds of milliseconds) and a few
milliseconds of CPU in Django, so the server must hold many requests in flight per process without
a thread each: gevent workers (one greenlet per connection), one worker process per core. Every value can
be changed from the environment without editing this file:

GUNICORN_BIND               address (default 127.0.0.1:8000: behind a reverse proxy on the same host)
WEB_CONCURRENCY             worker processes (default: the number of cores)
GUNICORN_WORKER_CLASS       gevent (default), or gthread
GUNICORN_WORKER_CONNECTIONS simultaneous connections per gevent worker (default 1000)
GUNICORN_THREADS            threads per gthread worker (default 128)
GUNICORN_KEEPALIVE          seconds an idle keep-alive connection is kept open (default 15): longer than
                            the proxy's upstream keepalive_timeout, so that the proxy never sends a
                            POST on a connection gunicorn is closing
GUNICORN_TIMEOUT            seconds before a silent worker is restarted (default 30)
GUNICORN_ACCESSLOG          "-" for an access log on stdout (default: none; the reverse proxy logs)
GUNICORN_GC_THRESHOLD       the garbage collector's thresholds in each worker (default 50000,20,100;
                            "default" keeps Python's 700,10,10), set after gc.freeze() (below)

With gevent workers, give Django a connection pool (DATABASE_POOL=16 in the example project's settings):
persistent connections would be one per greenlet.
"""

import gc
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
threads = int(os.environ.get("GUNICORN_THREADS", "128")) if worker_class == "gthread" else 1
backlog = 2048
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "15"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# Not preloaded: gevent must patch the standard library before Django and psycopg are imported, which
# the gevent worker does after the fork.
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")
# The proxy on the same host sets X-Forwarded-Proto; trust it from loopback only.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

_gc_threshold = os.environ.get("GUNICORN_GC_THRESHOLD", "50000,20,100")


def post_worker_init(worker):
    """Once the worker has loaded Django and the app: keep the garbage collector off the hot path.

    A request allocates thousands of short-lived objects, almost all freed by reference counting; with
    Python's default threshold (700) they still start a collection every few hundred allocations, each
    walking the young objects, and the older generations hold everything Django loaded at start-up.
    gc.freeze() moves those start-up objects out of the collector's reach, and a first threshold of
    50000 leaves collections for the few reference cycles. Measured in the load benchmark (bench/load.py,
    gevent workers): the collector's share of a worker's CPU fell from 4-8 % to 0.5-1.6 %.
    """
    if _gc_threshold != "default":
        gc.freeze()
        gc.set_threshold(*(int(value) for value in _gc_threshold.split(",")))
