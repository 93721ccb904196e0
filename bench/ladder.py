"""Cost ladder of the token endpoint: from the floor to ours, one piece of the required work at a time.

    .venv/bin/python bench/ladder.py                       # 0 ms/16 clients and 300 ms/256 clients
    .venv/bin/python bench/ladder.py --configs 0:16 --rounds 5 --duration 5

bench/load.py says how far ours is from the floor; this says where the distance comes from. It starts the
same processes as bench/load.py (the fast upstream, the floor, the example project under the documented
gunicorn configuration with PostgreSQL and Redis) and drives, with wrk, one rung after another:

  floor    bench/floor.py: no Django (a WSGI function making the upstream call)
  django   + Django and the site's middleware (bench/ladder_urls.py), nothing read from a store
  session  + the session read from the cache (cached_db sessions in Redis)
  user     + the user read from PostgreSQL, the session hash, CSRF and Origin checked
  preset   + the preset resolved and the user's access to it checked (the app's own functions)
  limits   + the IP and user rate limits counted in Redis (django-ratelimit)
  audit    + the audit row written: all the required work, by hand
  service  the app's issuing service from a plain Django view (its adapter, validation, signals)
  ours     the real endpoint (DRF)

Rungs run in turn, in several rounds, so that a slow moment of the shared machine hits every rung alike;
the table shows each rung's median tokens/s, its ratio to the floor's, the ratio to the rung before,
and the server's CPU per request. Needs what bench/load.py needs (it says what is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load

RUNGS = ("floor", "django", "session", "user", "preset", "limits", "audit", "service", "ours")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        default="0:16,300:256",
        help="upstream delay in ms and client count pairs (default 0:16,300:256)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all rungs (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run (default 1)")
    parser.add_argument("--json", type=Path, help="also write every run's result to this file")
    args = parser.parse_args(argv)
    args.configs = [tuple(int(v) for v in pair.split(":")) for pair in args.configs.split(",") if pair]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    python = load.venv_python()
    database_url = os.environ.get("RT_BENCH_LOAD_DATABASE_URL", load.DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("RT_BENCH_REDIS_URL", load.DEFAULT_REDIS_URL)
    try:
        load.check_prerequisites(["ours", "floor"], python, database_url, redis_url)
    except load.Missing as exc:
        print(f"Missing prerequisites:\n{exc}", file=sys.stderr)
        return 2

    log_dir = Path(tempfile.mkdtemp(prefix="rt-bench-ladder-"))
    procs = load.Processes(log_dir)
    upstream_port, ours_port, floor_port = load.free_port(), load.free_port(), load.free_port()
    upstream = f"http://{load.HOST}:{upstream_port}"
    common = load.common_environment(upstream)
    ours_env = load.ours_environment(
        common, load.ROOT, database_url, redis_url, ours_port, settings="bench.ladder_settings"
    )
    ours_env["FLOOR_UPSTREAM_URL"] = f"{upstream}/v1"  # the rungs below `service` call it like the floor
    floor_env = load.floor_environment(common, upstream, floor_port)
    gunicorn = [python, "-m", "gunicorn", "-c", str(load.ROOT / "example_project" / "gunicorn.conf.py")]
    results: list[load.Result] = []
    try:
        proc = procs.start(
            "upstream",
            [python, str(load.ROOT / "bench" / "fast_upstream.py"), "--port", str(upstream_port)],
            common,
        )
        load.wait_http(f"{upstream}/__bench/stats", proc)
        load.prepare_ours(python, ours_env, load.ROOT)
        ours = procs.start("ours", [*gunicorn, "example_project.wsgi:application"], ours_env)
        base = f"http://{load.HOST}:{ours_port}"
        load.wait_http(f"{base}/accounts/login/", ours)
        floor = procs.start("floor", [*gunicorn, "bench.floor:application"], floor_env)
        load.wait_http(f"http://{load.HOST}:{floor_port}/", floor)

        cookie, csrf = load.login(base)
        signed_in = {"WRK_COOKIE": cookie, "WRK_CSRF": csrf, "WRK_ORIGIN": base}
        targets: dict[str, tuple[str, dict[str, str], int]] = {
            "floor": (f"http://{load.HOST}:{floor_port}/token", {"WRK_BODY": "{}"}, floor.pid)
        }
        for rung in RUNGS[1:-1]:
            targets[rung] = (f"{base}/ladder/{rung}/", {**signed_in, "WRK_BODY": "{}"}, ours.pid)
        body = json.dumps({"preset": load.BENCH_PRESET})
        targets["ours"] = (f"{base}{load.API_PATH}", {**signed_in, "WRK_BODY": body}, ours.pid)
        for url, env, _pid in targets.values():
            headers = {"Content-Type": "application/json"}
            if "WRK_COOKIE" in env:
                headers.update({"Cookie": cookie, "X-CSRFToken": csrf, "Origin": base})
            load.check_one(url, headers, env["WRK_BODY"].encode())
        print(f"All {len(targets)} rungs answer 201 with a client secret. Logs in {log_dir}", flush=True)

        for delay, clients in args.configs:
            load.set_delay(upstream, delay)
            for round_number in range(1, args.rounds + 1):
                line = []
                for rung, (url, env, pid) in targets.items():
                    if args.warmup > 0:
                        load.run_wrk(url, clients, args.warmup, env)
                    result = load.measure(rung, url, delay, clients, args.duration, env, pid)
                    results.append(result)
                    line.append(f"{rung} {result.rps:.0f}")
                print(
                    f"  delay {delay} ms, {clients} clients, round {round_number}: {', '.join(line)}",
                    flush=True,
                )
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        procs.report_failure("The ladder", exc)
        return 1
    finally:
        procs.stop_all()

    print_ladder(results, args.configs)
    if args.json:
        load.write_json(args.json, results)
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def print_ladder(results: list[load.Result], configs: list[tuple[int, int]]) -> None:
    for delay, clients in configs:
        runs = [r for r in results if (r.delay_ms, r.clients) == (delay, clients)]
        median = {
            rung: statistics.median(r.rps for r in runs if r.server == rung)
            for rung in RUNGS
            if any(r.server == rung for r in runs)
        }
        print(f"\nUpstream delay {delay} ms, {clients} clients (medians of {len(runs) // len(median)} runs):")
        columns = ("tokens/s", "/floor", "/previous", "p99 ms", "cpu ms", "bad")
        print(f"  {'rung':8} " + " ".join(f"{c:>{max(7, len(c))}}" for c in columns))
        previous = None
        for rung, rps in median.items():
            mine = [r for r in runs if r.server == rung]
            p99 = statistics.median(r.p99_ms for r in mine)
            cpus = [r.cpu_ms_per_token for r in mine if r.cpu_ms_per_token is not None]
            cpu = f"{statistics.median(cpus):7.1f}" if cpus else f"{'-':>7}"
            to_floor = rps / median["floor"] if median.get("floor") else None
            to_previous = rps / previous if previous else None
            print(
                f"  {rung:8} {rps:9.0f} {load.fmt_ratio(to_floor):>7} {load.fmt_ratio(to_previous):>9}"
                f" {p99:7.0f} {cpu} {sum(r.failures for r in mine):5d}"
            )
            previous = rps
    print(
        "\ntokens/s: 201 answers per second (median over the rounds); /floor, /previous: ratios of those"
        " medians; cpu ms: CPU of the serving process tree per issued token (not PostgreSQL's, Redis's or the"
        " upstream's); bad: non-201 answers and socket errors over all rounds."
    )


if __name__ == "__main__":
    sys.exit(main())
