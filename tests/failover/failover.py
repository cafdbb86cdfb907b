"""The failover scenario's load and its checks (tests/failover/run.sh starts the cluster, the
server and kills the primary; this drives the API and judges).

Writers create and update news through the API, concurrently, for LOAD_SECS. The primary is killed
(SIGKILL) by run.sh when this script has written `FAILOVER_READY_FILE`; run.sh writes the moment of
the kill (time.time()) to `FAILOVER_KILLED_FILE`. Then it checks:

- every answer is 2xx or a 503 problem+json with Retry-After, never a 500 or another status;
- every failed request fails fast (within FAIL_FAST_SECS), none hangs to REQUEST_TIMEOUT_SECS;
- writes fail for a while after the kill, then succeed again, on the same server process;
- every acknowledged create is in the database (SELECT id FROM news on the new primary), every row
  there is one of ours, and each updated item holds its last acknowledged title or a later one
  whose answer was lost;
- and prints the unavailability window: first failed write to the first acknowledged write that
  started after it.

Standard library only: urllib, threads, and psql for the final read.
"""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

BASE_URL = os.environ["BASE_URL"]
DATABASE_URL = os.environ["FAILOVER_DATABASE_URL"]
LOAD_SECS = float(os.environ.get("LOAD_SECS", "30"))
WRITERS = int(os.environ.get("WRITERS", "6"))
FAIL_FAST_SECS = float(os.environ.get("FAIL_FAST_SECS", "5"))
REQUEST_TIMEOUT_SECS = float(os.environ["REQUEST_TIMEOUT_SECS"])
READY_FILE = os.environ["FAILOVER_READY_FILE"]
KILLED_FILE = os.environ["FAILOVER_KILLED_FILE"]

checks = {"passed": 0, "failed": 0}


def check(ok, what):
    if ok:
        checks["passed"] += 1
        print(f"ok   {what}")
    else:
        checks["failed"] += 1
        print(f"FAIL {what}")


def call(method, path, body=None, token=None):
    """One request; returns (status, headers, parsed body or text, started, ended)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE_URL + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.time()
    try:
        # Past the server's own deadline: a request that reaches it hangs, which is a failure.
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECS + 10) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    except Exception as err:  # noqa: BLE001 - a transport failure is a result to report
        return (0, {}, repr(err), started, time.time())
    ended = time.time()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return (status, headers, parsed, started, ended)


def sign_in():
    status, _, body, _, _ = call(
        "POST",
        "/signin",
        {"email": os.environ["ADMIN_EMAIL"], "password": os.environ["ADMIN_PASSWORD"]},
    )
    if status != 200:
        sys.exit(f"failover: sign-in answered {status}: {body}")
    return body["access_token"]


class Writer(threading.Thread):
    """Creates news, and every other step renames one of its own acknowledged items."""

    def __init__(self, number, token, until):
        super().__init__(daemon=True)
        self.number, self.token, self.until = number, token, until
        self.results = []  # (kind, status, headers, body, started, ended)
        self.created = {}  # id -> title at creation (acknowledged)
        self.attempted_titles = set()  # every title ever sent, acknowledged or not
        # id -> titles sent since (and including) the last acknowledged one, in order
        self.titles = {}

    def run(self):
        step = 0
        while time.time() < self.until:
            step += 1
            if step % 2 == 0 and self.created:
                ids = sorted(self.created)
                news_id = ids[step % len(ids)]
                title = f"w{self.number} update {step}"
                self.attempted_titles.add(title)
                self.titles[news_id].append(title)
                result = call("PATCH", f"/news/{news_id}", {"title": title}, self.token)
                if 200 <= result[0] < 300:
                    self.titles[news_id] = [title]
                self.results.append(("update", *result))
            else:
                title = f"w{self.number} create {step}"
                self.attempted_titles.add(title)
                result = call("POST", "/news", {"title": title, "body": "failover"}, self.token)
                if 200 <= result[0] < 300:
                    self.created[result[2]["id"]] = title
                    self.titles[result[2]["id"]] = [title]
                self.results.append(("create", *result))
            if result[0] != 201 and result[0] != 200:
                time.sleep(0.05)  # a client backing off a little; the server said Retry-After


def rows_on_the_primary():
    """id and title of every news row, read through the multi-host URL (the writable node)."""
    out = subprocess.run(
        ["psql", "-X", "-At", "-F", "\t", DATABASE_URL, "-c", "select id, title from news"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def main():
    token = sign_in()
    start = time.time()
    until = start + LOAD_SECS
    writers = [Writer(n, token, until) for n in range(WRITERS)]
    for writer in writers:
        writer.start()
    with open(READY_FILE, "w") as ready:
        ready.write(str(start))
    for writer in writers:
        writer.join(LOAD_SECS + REQUEST_TIMEOUT_SECS + 30)
    check(not any(w.is_alive() for w in writers), "every writer finished")
    killed_at = float(open(KILLED_FILE).read()) if os.path.exists(KILLED_FILE) else None
    check(killed_at is not None, "the primary was killed during the load")

    results = sorted((r for w in writers for r in w.results), key=lambda r: r[4])
    ok = [r for r in results if 200 <= r[1] < 300]
    failed = [r for r in results if not 200 <= r[1] < 300]
    statuses = {}
    for r in results:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    print(f"failover: {len(results)} writes, statuses {dict(sorted(statuses.items()))}")

    unexpected = [r for r in results if r[1] not in (200, 201, 503)]
    check(not unexpected, f"only 2xx and 503 (others: {[(r[0], r[1], r[3]) for r in unexpected[:3]]})")
    bad_503 = [
        r
        for r in failed
        if r[1] == 503
        and not (
            r[2].get("Retry-After", "").isdigit()
            and r[2].get("Content-Type", "").startswith("application/problem+json")
            and isinstance(r[3], dict)
            and r[3].get("status") == 503
        )
    ]
    check(not bad_503, f"every 503 is problem+json with Retry-After ({bad_503[:1]})")
    slowest = max((r[5] - r[4] for r in failed), default=0.0)
    check(
        slowest <= FAIL_FAST_SECS,
        f"every failed write failed fast: slowest {slowest:.2f} s <= {FAIL_FAST_SECS} s",
    )
    slowest_any = max((r[5] - r[4] for r in results), default=0.0)
    check(
        slowest_any < REQUEST_TIMEOUT_SECS,
        f"no write hung: slowest {slowest_any:.2f} s < REQUEST_TIMEOUT_SECS {REQUEST_TIMEOUT_SECS}",
    )

    check(bool(failed), f"writes failed during the switch ({len(failed)})")
    if failed and killed_at is not None:
        first_failure = min(r[5] for r in failed)
        last_failure = max(r[5] for r in failed)
        after = [r for r in ok if r[4] >= first_failure]
        check(bool(after), "writes succeed again after the promotion")
        before = [r for r in ok if r[5] <= killed_at]
        check(len(before) >= WRITERS, f"writes succeeded before the kill ({len(before)})")
        if after:
            recovered = min(r[5] for r in after)
            late = [r for r in ok if r[4] >= last_failure]
            check(len(late) >= 10, f"the load went on after the switch ({len(late)} writes)")
            window = recovered - first_failure
            print(
                f"failover: unavailability window {window:.1f} s "
                f"(first failed write {first_failure - killed_at:+.1f} s after the kill, "
                f"first acknowledged write after it {recovered - killed_at:+.1f} s); "
                f"{len(failed)} writes answered 503 in {last_failure - first_failure:.1f} s"
            )
            with open(os.environ.get("FAILOVER_WINDOW_FILE", "/dev/null"), "w") as out:
                out.write(f"{window:.1f}\n")

    rows = rows_on_the_primary()
    acked = {i: t for w in writers for i, t in w.created.items()}
    lost = sorted(set(acked) - set(rows))
    check(not lost, f"all {len(acked)} acknowledged creates are on the new primary (lost: {lost[:5]})")
    attempted = set().union(*(w.attempted_titles for w in writers))
    unacked = [i for i in rows if i not in acked]
    print(f"failover: {len(rows)} rows, {len(acked)} acknowledged creates, "
          f"{len(unacked)} created whose answer was lost")
    stale = []
    for w in writers:
        for news_id, titles in w.titles.items():
            if news_id in rows and rows[news_id] not in titles:
                stale.append((news_id, rows[news_id], titles[0]))
    check(not stale, f"every acknowledged update holds (or a later one): {stale[:3]}")
    wrong_titles = [t for t in rows.values() if t not in attempted]
    check(not wrong_titles, f"no title we did not send ({wrong_titles[:3]})")

    # run.sh adds its own checks and prints the suite's count line.
    with open(os.environ["FAILOVER_COUNTS_FILE"], "w") as out:
        out.write(f"{checks['passed']} {checks['failed']}\n")
    return 1 if checks["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
