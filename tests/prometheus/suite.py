"""A real Prometheus scrapes the server and answers queries about it.

Run by tests/prometheus/run.sh through scripts/with-test-server.sh, which exports
BASE_URL (the server) and ADMIN_EMAIL / ADMIN_PASSWORD. Starts
`prometheus` on a free loopback port with a configuration that scrapes BASE_URL's
/metrics every second and a storage directory of its own, makes a few requests,
then polls Prometheus's HTTP API (at most 30 s per question) until it has what
it should. Prints one line per check and `prometheus: N passed, M failed`; exits
non-zero when a check failed. Stops Prometheus whatever happens.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BASE_URL = os.environ["BASE_URL"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from procs import free_port, stop  # noqa: E402

LOG = ROOT / "target" / "e2e" / "prometheus.log"
DEADLINE_SECS = 30
JOB = "newsapi"

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}", flush=True)


def call(method, url, body=None, token=None):
    """(status, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def query(prometheus, promql):
    """The result vector of an instant query, or None when Prometheus did not answer."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        status, body = call("GET", url)
    except (urllib.error.URLError, OSError):
        return None
    if status != 200 or not body or body.get("status") != "success":
        return None
    return body["data"]["result"]


def poll(what, ask):
    """Asks `ask()` until it returns something true, for at most DEADLINE_SECS; the last answer."""
    deadline = time.monotonic() + DEADLINE_SECS
    while True:
        answer = ask()
        if answer or time.monotonic() > deadline:
            if not answer:
                print(f"     (gave up waiting for {what} after {DEADLINE_SECS} s)", flush=True)
            return answer
        time.sleep(0.25)


def traffic():
    """A sign-up, a sign-in, a news item read twice and a missing one; returns the item's id."""
    email = f"prometheus-{os.getpid()}@example.com"
    password = "correct horse battery staple"
    status, _ = call("POST", f"{BASE_URL}/signup", {"email": email, "password": password})
    check("sign-up answers 201", status == 201, f"got {status}")
    status, tokens = call("POST", f"{BASE_URL}/signin", {"email": email, "password": password})
    check("sign-in answers 200", status == 200, f"got {status}")
    token = tokens["access_token"]
    status, news = call("POST", f"{BASE_URL}/news", {"title": "Scraped", "body": "By Prometheus."}, token)
    check("a news item is created", status == 201, f"got {status}")
    for _ in range(2):
        call("GET", f"{BASE_URL}/news/{news['id']}", token=token)
    call("GET", f"{BASE_URL}/news/0192f0c4-0000-7000-8000-000000000000", token=token)
    return news["id"]


def main():
    target = urllib.parse.urlsplit(BASE_URL).netloc
    port = free_port()
    prometheus = f"http://127.0.0.1:{port}"
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsapi-prometheus-") as tmp:
        config = pathlib.Path(tmp) / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        with open(LOG, "w") as log:
            process = subprocess.Popen(
                [
                    "/usr/bin/prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )
        try:
            run_checks(prometheus, process)
        finally:
            stop(process, timeout=10)
    failed = results.count(False)
    if failed:
        print(f"     Prometheus's log: {LOG}", flush=True)
    print(f"prometheus: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


def run_checks(prometheus, process):
    ready = poll("Prometheus to start", lambda: process.poll() is None and query(prometheus, "1") is not None)
    check("Prometheus starts and answers queries", bool(ready), f"see {LOG}")
    if not ready:
        return
    news_id = traffic()

    up = poll("the target to be up", lambda: query(prometheus, f'up{{job="{JOB}"}} == 1'))
    check("the server is a target that is up (up == 1)", bool(up), f"up: {query(prometheus, 'up')}")

    def reads():
        vector = query(prometheus, "http_requests_total") or []
        return [
            s for s in vector
            if s["metric"].get("route") == "/news/{id}"
            and s["metric"].get("status") == "200"
            and s["metric"].get("method") == "GET"
            and float(s["value"][1]) >= 2
        ]

    found = poll("http_requests_total for GET /news/{id} 200", reads)
    check(
        "http_requests_total{method=GET,route=/news/{id},status=200} counts both reads",
        bool(found),
        json.dumps(query(prometheus, "http_requests_total")),
    )
    vector = query(prometheus, "http_requests_total") or []
    missing = [s for s in vector if s["metric"].get("route") == "/news/{id}" and s["metric"].get("status") == "404"]
    check("the 404 for a missing item is its own series", len(missing) == 1, json.dumps(vector))
    raw = [s for s in vector if news_id in json.dumps(s["metric"])]
    check("no series carries a raw id", not raw, json.dumps(raw))

    pool = poll("db_pool_max_connections", lambda: query(prometheus, f'db_pool_max_connections{{job="{JOB}"}} > 0'))
    check("the pool gauges are scraped", bool(pool), json.dumps(query(prometheus, "db_pool_max_connections")))


if __name__ == "__main__":
    sys.exit(main())
