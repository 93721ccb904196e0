"""CPU per token request through Django's WSGI handler in one process: no gunicorn, no wrk, one at a time.

    .venv/bin/python bench/inprocess.py                    # every ladder rung, ours and the hand-written peer
    .venv/bin/python bench/inprocess.py --views ours,peer --requests 2000 --rounds 7
    .venv/bin/python bench/inprocess.py --views ours --src /path/to/other/checkout    # A/B tries
    RT_BENCH_PROFILE=/tmp/prof .venv/bin/python bench/inprocess.py --views ours,peer  # cProfile dumps

bench/load.py measures servers under load on a shared machine, where wrk, the upstream, PostgreSQL and
Redis compete for the cores and the figures move by ±15 % between runs. This measures each view's own
cost: it calls Django's WSGI application directly (under gevent's monkey-patching, like the documented
deployment's workers), with a logged-in session cookie and a CSRF token, against bench/fast_upstream.py
answering at once, after the gunicorn configuration's worker hook (post_worker_init), and reads the
process's CPU time (and that of its PostgreSQL backend and of Redis, from /proc) per request: the
median of several rounds. The views are the cost ladder's rungs
(bench/ladder_urls.py, each adding one piece of the work), ours (the real endpoint) and the
hand-written peer (bench/handwritten/), so the differences between them are what each piece costs.

Needs what bench/load.py needs for PostgreSQL and Redis (RT_BENCH_LOAD_DATABASE_URL, RT_BENCH_REDIS_URL;
the database is prepared by bench/load.py's own script).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUNGS = ("django", "session", "user", "preset", "limits", "audit", "service")
VIEWS = (*RUNGS, "ours", "peer")
APP_NAME = "rt-bench-inprocess"
CHILD = "--child"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", default=",".join(VIEWS), help=f"any of {','.join(VIEWS)}")
    parser.add_argument("--requests", type=int, default=800, help="requests per round (default 800)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per view; the median is shown")
    parser.add_argument("--src", type=Path, default=ROOT, help="a checkout to run the views from")
    args = parser.parse_args(argv)
    args.views = [v for v in args.views.split(",") if v]
    unknown = set(args.views) - set(VIEWS)
    if unknown:
        parser.error(f"unknown views: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == CHILD:
        return child(json.loads(sys.argv[2]))
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench import load

    python = load.venv_python()
    database_url = os.environ.get("RT_BENCH_LOAD_DATABASE_URL", load.DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("RT_BENCH_REDIS_URL", load.DEFAULT_REDIS_URL)
    try:
        load.check_prerequisites(["ours"], python, database_url, redis_url)
    except load.Missing as exc:
        print(f"Missing prerequisites:\n{exc}", file=sys.stderr)
        return 2
    log_dir = Path(tempfile.mkdtemp(prefix="rt-bench-inprocess-"))
    procs = load.Processes(log_dir)
    port = load.free_port()
    upstream = f"http://{load.HOST}:{port}"
    common = load.common_environment(upstream)
    try:
        proc = procs.start(
            "inprocess-upstream",
            [python, str(ROOT / "bench" / "fast_upstream.py"), "--port", str(port)],
            common,
        )
        load.wait_http(f"{upstream}/__bench/stats", proc)
        env = load.ours_environment(common, args.src, database_url, redis_url, 0)
        load.prepare_ours(python, env, args.src.resolve())
        print(
            f"{'view':8} {'server ms':>9} {'postgres':>8} {'redis':>6}   (CPU per request, median of"
            f" {args.rounds} x {args.requests})"
        )
        for view in args.views:
            spec = {
                "view": view,
                "requests": args.requests,
                "rounds": args.rounds,
                "src": str(args.src.resolve()),
                "root": str(ROOT),
                "database_url": database_url,
                "redis_url": redis_url,
                "upstream": upstream,
            }
            done = subprocess.run(  # noqa: S603 - our interpreter, this script
                [python, str(Path(__file__).resolve()), CHILD, json.dumps(spec)],
                env={**env, "PYTHONPATH": str(args.src.resolve())},
                cwd=args.src.resolve(),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(f"{view}: failed\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
                return 1
            print(done.stdout.strip(), flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def child(spec: dict[str, Any]) -> int:
    """In a fresh interpreter: patch like a gevent worker, set Django up for the view, measure it."""
    from gevent import monkey

    monkey.patch_all()
    sys.path.insert(0, spec["src"])  # the checkout measured: its app, its example project, its bench/
    view = spec["view"]
    settings_module = {"peer": "bench.handwritten.settings"}.get(view, "bench.ladder_settings")
    path = {"ours": "/rt/transcription-sessions/", "peer": "/token/"}.get(view, f"/ladder/{view}/")
    body = b'{"preset": "bench"}' if view == "ours" else b"{}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        OPENAI_BASE_URL=f"{spec['upstream']}/inprocess/v1",
        FLOOR_UPSTREAM_URL=f"{spec['upstream']}/inprocess/v1",
        RT_BENCH_APP_NAME=APP_NAME,
    )
    import django

    django.setup()
    # What a gunicorn worker of the documented deployment runs once the app is loaded (gc tuning).
    worker_hook = runpy.run_path(str(Path(spec["src"]) / "example_project" / "gunicorn.conf.py")).get(
        "post_worker_init"
    )
    if worker_hook is not None:
        worker_hook(None)
    from django.contrib.auth import get_user_model
    from django.core.wsgi import get_wsgi_application
    from django.db import connections
    from django.middleware.csrf import _get_new_csrf_string
    from django.test import Client

    from bench import load, probes

    application = get_wsgi_application()
    browser = Client()
    browser.force_login(get_user_model().objects.get(username=load.BENCH_USER))
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    csrf = _get_new_csrf_string()
    connections.close_all()
    answered: dict[str, str] = {}

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        answered["status"] = status

    def one() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1:8000",
            "HTTP_COOKIE": f"{cookie}; csrftoken={csrf}",
            "HTTP_X_CSRFTOKEN": csrf,
            "HTTP_ORIGIN": "http://127.0.0.1:8000",
            "HTTP_USER_AGENT": "bench-inprocess",
            "REMOTE_ADDR": "127.0.0.1",
        }
        content = b"".join(application(environ, start_response))
        if not answered["status"].startswith("201"):
            raise SystemExit(f"{view}: {answered['status']} {content[:300]!r}")

    for _ in range(200):  # warm: connections, caches, imports
        one()
    profile_to = os.environ.get("RT_BENCH_PROFILE")  # a cProfile dump of the measured rounds (slower)
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    postgres = probes.Postgres(spec["database_url"])
    redis_process = probes.redis_pid(spec["redis_url"])
    rounds = []
    for _ in range(spec["rounds"]):
        backends = probes.CpuOf(lambda: postgres.backend_pids(APP_NAME))
        redis = probes.CpuOf(lambda: [redis_process])
        backends.start()
        redis.start()
        started = time.process_time()
        for _ in range(spec["requests"]):
            one()
        server = time.process_time() - started
        rounds.append((server, backends.stop(), redis.stop()))
    postgres.close()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{profile_to}.{view}")
    n = spec["requests"]
    server_ms, postgres_ms, redis_ms = (statistics.median(r[i] for r in rounds) * 1000 / n for i in range(3))
    print(f"{view:8} {server_ms:9.2f} {postgres_ms:8.2f} {redis_ms:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
