"""Serving: readiness and request latency through ``mlops_helpers.serving`` vs a bare HTTP client, side by side.

``python -m benchmarks serving`` (or ``make bench``). In one run, on one freshly trained iris model in a temporary
sqlite store:

- readiness, start -> first good prediction: ``ModelServer(...).start()`` + ``predict`` vs the same
  ``mlflow models serve`` command launched with ``subprocess`` and polled with ``http.client`` (alternating,
  ``--starts`` times each);
- sequential single-row requests against one server: ``ModelServer.predict(DataFrame)`` vs ``requests.Session``
  with a pre-built JSON body vs a kept-alive ``http.client`` connection (interleaved in rounds, so that load from
  other programs hits all three alike).

Printed as medians and ratios (helper / bare). Reference measured on the course machine when idle: ready ~12 s
after launch, ~230 sequential requests/s, p50 3.9 ms.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def _bare_start_to_prediction(command, env, port, body) -> float:
    """The baseline: launch the CLI, poll /ping with http.client every 0.1 s, then one POST. Seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bare server exited with {proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        json.loads(answer.read())["predictions"]
        conn.close()
        return time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _time_calls(call, n) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(latencies_ms: list[float]) -> str:
    ordered = sorted(latencies_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    rps = 1000 * len(ordered) / sum(ordered)
    return f"p50 {statistics.median(ordered):6.2f} ms  p99 {p99:6.2f} ms  {rps:6.0f} req/s"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=2, help="server starts per method (default: 2)")
    parser.add_argument("--requests", type=int, default=600, help="timed requests per method (default: 600)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds the requests are split in")
    args = parser.parse_args(argv)

    home = os.getcwd()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
            os.chdir(folder)  # the store's artifacts (./mlruns) go to the temporary folder
            _measure(args, folder, ready := {"helper": [], "bare": []}, latencies := {})
    finally:
        os.chdir(home)
    _report(args, ready, latencies)
    return 0


def _measure(args, folder, ready, latencies):
    import requests
    from tqdm import tqdm

    from mlops_helpers import processes, serving, tracking
    from mlops_helpers.data import split_iris

    uri = f"sqlite:///{folder}/mlflow.db"
    tracking.setup_experiment(uri, "bench-serving")
    logged = tracking.train_and_log()
    one_row = split_iris(42).X_test.head(1)
    body = json.dumps(serving.to_payload(one_row))
    expected = logged.model.predict(one_row).tolist()

    with tqdm(total=2 * args.starts, desc="server starts", file=sys.stderr) as bar:
        for _ in range(args.starts):
            t0 = time.perf_counter()
            with serving.ModelServer(logged.model_uri, tracking_uri=uri) as server:
                assert server.predict(one_row).tolist() == expected
                ready["helper"].append(time.perf_counter() - t0)
            bar.update()
            port = serving.free_port()
            probe = serving.ModelServer(logged.model_uri, tracking_uri=uri, port=port)
            ready["bare"].append(_bare_start_to_prediction(probe.command(), processes.child_env(uri), port, body))
            bar.update()

    latencies.update({"helper predict(DataFrame)": [], "bare requests.Session": [], "bare http.client": []})
    per_round = max(1, args.requests // args.rounds)
    with serving.ModelServer(logged.model_uri, tracking_uri=uri) as server:
        session = requests.Session()
        # uvicorn closes a keep-alive connection idle for 5 s: each round opens a fresh one (untimed) for
        # http.client; requests.Session reconnects by itself.
        conn = None
        headers = {"Content-Type": "application/json"}

        def via_session():
            session.post(server.invocations_url, data=body, headers=headers, timeout=30).raise_for_status()

        def via_http_client():
            conn.request("POST", "/invocations", body, headers)
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200

        calls = {
            "helper predict(DataFrame)": lambda: server.predict(one_row),
            "bare requests.Session": via_session,
            "bare http.client": via_http_client,
        }
        for round_ in tqdm(range(args.rounds + 1), desc="request rounds", file=sys.stderr):
            for name, call in calls.items():
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                if round_ == 0:  # warm-up round, not timed
                    _time_calls(call, 10)
                else:
                    latencies[name].extend(_time_calls(call, per_round))
        conn.close()
        session.close()


def _report(args, ready, latencies):
    per_round = max(1, args.requests // args.rounds)
    helper_ready, bare_ready = statistics.median(ready["helper"]), statistics.median(ready["bare"])
    print(f"readiness, start -> first good prediction (median of {args.starts}):")
    print(f"  helper ModelServer     {helper_ready:6.1f} s   {['%.1f' % s for s in ready['helper']]}")
    print(f"  bare Popen+http.client {bare_ready:6.1f} s   {['%.1f' % s for s in ready['bare']]}")
    print(f"  ratio helper/bare      {helper_ready / bare_ready:6.2f}x")
    print(f"sequential single-row requests ({per_round * args.rounds} each, {args.rounds} interleaved rounds):")
    for name, values in latencies.items():
        print(f"  {name:26} {_summary(values)}")
    helper_p50 = statistics.median(latencies["helper predict(DataFrame)"])
    for name in ("bare requests.Session", "bare http.client"):
        print(f"  p50 ratio helper / {name[5:]:16} {helper_p50 / statistics.median(latencies[name]):5.2f}x")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
