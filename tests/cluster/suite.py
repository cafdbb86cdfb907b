"""Three replicas on one database behind nginx: the scenarios of issue 14, item 1 (the hashing
share on a cluster of its own, with slow hashes and a small share; the rest on another).

Run by tests/cluster/run.sh (`make cluster-test`). Every request goes through nginx; where it
matters, which replica answered is read from the replicas' access lines (harness.Cluster.replica_of).
Prints one line per check and `cluster: N passed, M failed`; exits non-zero when a check failed.
"""

import asyncio
import os
import secrets
import subprocess
import sys
import time
import urllib.parse

import httpx

from harness import Cluster, PgBouncer, Replica, request_id

# The throttle: failed sign-ins per account and client address per window. The hashing queue is
# made wide enough that it never refuses here, so every 429 below is the throttle's.
SIGNIN_LIMIT = 6
SETTINGS = dict(
    SIGNIN_MAX_FAILURES=str(SIGNIN_LIMIT),
    SIGNIN_MAX_FAILURES_PER_IP="1000",
    SIGNIN_MAX_FAILURES_PER_ACCOUNT="1000",
    SIGNUP_MAX_PER_IP="1000",
    ACCOUNT_MAIL_MAX_PER_IP="1000",
    HASH_QUEUE_MAX="256",
    HASH_QUEUE_MAX_PER_IP="256",
    # Long enough that a rolling restart never reaches the end of the grace.
    SHUTDOWN_GRACE_SECS="20",
)

# The hashing share (HASH_QUEUE_MAX_PER_IP, counted across replicas) needs hashes slow enough to
# overlap and a small share, so its scenario runs on a cluster of its own with these settings.
HASH_SHARE = 2
HASH_SETTINGS = dict(
    SETTINGS,
    SIGNIN_MAX_FAILURES="1000",
    BCRYPT_COST="13",
    HASH_QUEUE_MAX_PER_IP=str(HASH_SHARE),
)

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}", flush=True)


async def call(client, method, path, *, json=None, token=None, headers=None):
    """(response, request id) of one request through nginx."""
    rid = request_id()
    sent = {"x-request-id": rid}
    if token:
        sent["authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    return await client.request(method, path, json=json, headers=sent), rid


async def new_user(client):
    email = f"cluster-{secrets.token_hex(6)}@example.com"
    password = f"pw-{secrets.token_hex(12)}"
    response, _ = await call(client, "POST", "/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return email, password


async def sign_in(client, email, password, headers=None):
    response, rid = await call(client, "POST", "/signin", json={"email": email, "password": password},
                               headers=headers)
    return response, rid


async def until_every_replica(cluster, client, make_request, want_status, limit=30):
    """Repeats a request until each replica has answered it at least once; returns
    ({replica: [statuses]}, all statuses were want_status)."""
    seen = {}
    for _ in range(limit):
        response, rid = await make_request()
        seen.setdefault(cluster.replica_of(rid), []).append(response.status_code)
        if all(i in seen for i in range(len(cluster.replicas))):
            break
    ok = all(i in seen for i in range(len(cluster.replicas))) and all(
        s == want_status for statuses in seen.values() for s in statuses
    )
    return seen, ok


async def sessions_across_replicas(cluster, client):
    email, password = await new_user(client)
    response, rid = await sign_in(client, email, password)
    tokens = response.json()
    home = cluster.replica_of(rid)
    check("sign-in through nginx", response.status_code == 200 and home is not None, response.status_code)

    seen, ok = await until_every_replica(
        cluster, client, lambda: call(client, "GET", "/whoami", token=tokens["access_token"]), 200)
    check(f"the access token from replica {home} works on every replica", ok, seen)

    refreshed_on = home
    for _ in range(10):
        response, rid = await call(client, "POST", "/token/refresh", json={"refresh_token": tokens["refresh_token"]})
        check_status = response.status_code
        if check_status != 200:
            break
        tokens = response.json()
        refreshed_on = cluster.replica_of(rid)
        if refreshed_on != home:
            break
    check(f"refreshed on another replica ({refreshed_on}) than the sign-in's ({home})",
          check_status == 200 and refreshed_on not in (home, None), check_status)

    seen, ok = await until_every_replica(
        cluster, client, lambda: call(client, "GET", "/whoami", token=tokens["access_token"]), 200)
    check("the refreshed access token works on every replica", ok, seen)


async def signout_everywhere(cluster, client):
    email, password = await new_user(client)
    response, _ = await sign_in(client, email, password)
    tokens = response.json()
    response, rid = await call(client, "POST", "/signout", token=tokens["access_token"],
                               json={"refresh_token": tokens["refresh_token"]})
    signed_out_on = cluster.replica_of(rid)
    check("sign-out", response.status_code == 204, response.status_code)

    seen, ok = await until_every_replica(
        cluster, client, lambda: call(client, "GET", "/whoami", token=tokens["access_token"]), 401)
    check(f"signed out on replica {signed_out_on}: the access token is refused on every replica at once", ok, seen)
    seen, ok = await until_every_replica(
        cluster, client,
        lambda: call(client, "POST", "/token/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    check("and the refresh token too", ok, seen)


async def throttle_across_replicas(cluster, client):
    email, password = await new_user(client)
    burst = 5 * SIGNIN_LIMIT
    answers = await asyncio.gather(*(sign_in(client, email, "wrong-" + password) for _ in range(burst)))
    statuses = [r.status_code for r, _ in answers]
    replicas = {cluster.replica_of(rid) for _, rid in answers}
    check(f"{burst} wrong passwords at once from one address, over replicas {sorted(replicas, key=str)}: "
          f"exactly {SIGNIN_LIMIT} are 401, the rest 429",
          statuses.count(401) == SIGNIN_LIMIT and statuses.count(429) == burst - SIGNIN_LIMIT
          and replicas == set(range(len(cluster.replicas))),
          sorted(statuses))
    refused = [r for r, _ in answers if r.status_code == 429]
    check("each 429 is a problem with Retry-After",
          all(r.headers.get("content-type", "").startswith("application/problem+json")
              and r.headers.get("retry-after", "").isdigit() for r in refused))

    response, _ = await sign_in(client, email, password)
    check("the right password from the same address is 429 too", response.status_code == 429, response.status_code)
    # nginx appends the address it saw to X-Forwarded-For; the replicas trust nginx's address
    # (TRUSTED_PROXIES) and take the hop before it as the client's. The suite itself runs on
    # 127.0.0.1, a trusted address, so the address it writes here counts as the client's.
    response, _ = await sign_in(client, email, password, headers={"x-forwarded-for": "203.0.113.9"})
    check("from another client address (X-Forwarded-For through nginx) it is 200",
          response.status_code == 200, response.status_code)


async def hashing_share_across_replicas(cluster, client):
    burst = 12
    guesser = {"x-forwarded-for": "203.0.113.20"}
    other = asyncio.create_task(
        sign_in(client, "elsewhere@example.com", "wrong-password", headers={"x-forwarded-for": "203.0.113.21"}))
    answers = await asyncio.gather(*(
        sign_in(client, f"guess{i}@example.com", "wrong-password", headers=guesser) for i in range(burst)))
    statuses = [r.status_code for r, _ in answers]
    replicas = {cluster.replica_of(rid) for _, rid in answers}
    checked = statuses.count(401)
    # A hash takes half a second or more at cost 13, so the burst is all in before the first two
    # end: HASH_SHARE checked in all (one more if a hash ended first); counted per replica it
    # would be HASH_SHARE on each of the three.
    check(f"{burst} sign-ins at once from one address, over replicas {sorted(replicas, key=str)}: "
          f"{HASH_SHARE} (or {HASH_SHARE + 1}) checked (401) in all, the rest 429",
          HASH_SHARE <= checked <= HASH_SHARE + 1 and statuses.count(429) == burst - checked
          and replicas == set(range(len(cluster.replicas))),
          sorted(statuses))
    refused = [r for r, _ in answers if r.status_code == 429]
    check("each 429 is a problem with Retry-After",
          all(r.headers.get("content-type", "").startswith("application/problem+json")
              and r.headers.get("retry-after", "").isdigit() for r in refused))
    response, _ = await other
    check("another address meanwhile is checked, not refused", response.status_code == 401, response.status_code)
    rows = cluster.psql("SELECT count(*) FROM hash_slots")
    check("every slot was given back", rows == [["0"]], rows)


async def signed_in_token(client):
    email, password = await new_user(client)
    response, _ = await sign_in(client, email, password)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def idempotent_retry_elsewhere(cluster, client):
    token = await signed_in_token(client)
    key = f"key-{secrets.token_hex(8)}"
    title = f"idempotent {secrets.token_hex(6)}"
    item = {"title": title, "body": "created once, whichever replica the retry reaches"}
    first, rid = await call(client, "POST", "/news", json=item, token=token, headers={"idempotency-key": key})
    origin = cluster.replica_of(rid)
    check("a create with an Idempotency-Key", first.status_code == 201, first.status_code)
    retry, where = None, origin
    for _ in range(10):
        retry, rid = await call(client, "POST", "/news", json=item, token=token, headers={"idempotency-key": key})
        where = cluster.replica_of(rid)
        if where != origin:
            break
    check(f"its retry on another replica ({where}, the first on {origin}) replays it: same status and body, "
          "Idempotent-Replayed: true",
          where not in (origin, None) and retry.status_code == first.status_code
          and retry.content == first.content and retry.headers.get("idempotent-replayed") == "true",
          (where, retry.status_code, retry.headers.get("idempotent-replayed")))
    rows = cluster.psql(f"select count(*) from news where title = '{title}'")
    check("one row in the database", rows == [["1"]], rows)


async def if_match_race(cluster, client):
    token = await signed_in_token(client)
    created, _ = await call(client, "POST", "/news", json={"title": "race", "body": "v1"}, token=token)
    news_id = created.json()["id"]
    etag = created.headers["etag"]
    racers = 12
    answers = await asyncio.gather(*(
        call(client, "PUT", f"/news/{news_id}", token=token, headers={"if-match": etag},
             json={"title": f"racer {n}", "body": "v2"})
        for n in range(racers)))
    statuses = [r.status_code for r, _ in answers]
    replicas = {cluster.replica_of(rid) for _, rid in answers}
    check(f"{racers} PUTs with one ETag at once, over replicas {sorted(replicas, key=str)}: one 200, the rest 412",
          statuses.count(200) == 1 and statuses.count(412) == racers - 1 and len(replicas) == len(cluster.replicas),
          sorted(statuses))
    winner = [r.json()["title"] for r, _ in answers if r.status_code == 200]
    rows = cluster.psql(f"select title from news where id = '{news_id}'")
    check("the database holds the winner's change", [[t] for t in winner] == rows, (winner, rows))


class Load:
    """Readers (a list page, one item) and writers (creates without an Idempotency-Key) in a loop,
    through nginx, each with one request in flight at a time, until stopped."""

    def __init__(self, client, token, known_id, readers, writers):
        self.client, self.token, self.known_id = client, token, known_id
        self.readers, self.writers = readers, writers
        self.stopped = asyncio.Event()
        self.acked = []  # ids of creates answered 201
        self.reads = self.writes = 0
        self.failed_reads, self.failed_writes = [], []

    async def _read(self, n):
        while not self.stopped.is_set():
            path = "/news?limit=5" if n % 2 else f"/news/{self.known_id}"
            try:
                response, _ = await call(self.client, "GET", path, token=self.token)
                status = response.status_code
            except httpx.HTTPError as err:
                status = repr(err)
            self.reads += 1
            if status != 200:
                self.failed_reads.append(status)

    async def _write(self, n):
        i = 0
        while not self.stopped.is_set():
            i += 1
            item = {"title": f"load {n}-{i} {secrets.token_hex(4)}", "body": "under load"}
            try:
                response, _ = await call(self.client, "POST", "/news", json=item, token=self.token)
                status = response.status_code
            except httpx.HTTPError as err:
                status, response = repr(err), None
            self.writes += 1
            if status == 201:
                self.acked.append(response.json()["id"])
            else:
                self.failed_writes.append(status)

    async def run(self, during):
        tasks = [asyncio.create_task(self._read(n)) for n in range(self.readers)]
        tasks += [asyncio.create_task(self._write(n)) for n in range(self.writers)]
        try:
            await during()
        finally:
            self.stopped.set()
            await asyncio.gather(*tasks)

    def summary(self):
        return (f"{self.reads} reads ({len(self.failed_reads)} failed: {self.failed_reads[:5]}), "
                f"{self.writes} creates ({len(self.failed_writes)} failed: {self.failed_writes[:5]})")


def acknowledged_are_stored(cluster, load):
    if not load.acked:
        return False, "nothing was acknowledged"
    ids = ",".join(f"'{i}'" for i in load.acked)
    rows = cluster.psql(f"select count(*) from news where id in ({ids})")
    return rows == [[str(len(set(load.acked)))]], (len(load.acked), rows)


async def kill_one_mid_load(cluster, client):
    token = await signed_in_token(client)
    created, _ = await call(client, "POST", "/news", json={"title": "read me", "body": "x"}, token=token)
    victim = cluster.replicas[1]
    load = Load(client, token, created.json()["id"], readers=6, writers=4)

    async def during():
        await asyncio.sleep(2)
        victim.kill()
        await asyncio.sleep(2)

    errors_before = len(cluster.nginx_errors())
    await load.run(during)
    print(f"     SIGKILL of replica {victim.index} under load: {load.summary()}", flush=True)
    met = [line for line in cluster.nginx_errors()[errors_before:] if f"127.0.0.1:{victim.port}" in line]
    check(f"replica {victim.index} died of SIGKILL, and nginx met it dead ({len(met)} errors logged) and went on",
          victim.proc.returncode == -9 and met, (victim.proc.returncode, len(met)))
    check("no read failed (nginx retried the ones the dead replica had)", not load.failed_reads, load.failed_reads)
    check(f"at most the creates in flight on it failed (≤ {load.writers}), each a 503 problem from nginx",
          len(load.failed_writes) <= load.writers and all(s == 503 for s in load.failed_writes),
          load.failed_writes)
    ok, detail = acknowledged_are_stored(cluster, load)
    check("every acknowledged create is in the database", ok, detail)
    victim.start()
    victim.wait_ready()


async def rolling_restart(cluster, client):
    token = await signed_in_token(client)
    created, _ = await call(client, "POST", "/news", json={"title": "read me", "body": "x"}, token=token)
    load = Load(client, token, created.json()["id"], readers=4, writers=2)
    statuses = []

    async def during():
        await asyncio.sleep(1)
        for replica in cluster.replicas:
            started = time.monotonic()
            statuses.append(await asyncio.to_thread(replica.terminate))
            print(f"     replica {replica.index} stopped (SIGTERM) in {time.monotonic() - started:.1f} s", flush=True)
            replica.start()
            await asyncio.to_thread(replica.wait_ready)
            await asyncio.sleep(1)

    errors_before = len(cluster.nginx_errors())
    await load.run(during)
    print(f"     rolling restart under load: {load.summary()}", flush=True)
    errors = cluster.nginx_errors()[errors_before:]
    refused = [sum(f"127.0.0.1:{r.port}" in line for line in errors) for r in cluster.replicas]
    print(f"     nginx's errors meeting each stopped replica (then retried elsewhere): {refused}", flush=True)
    check("each replica exited 0 on SIGTERM", statuses == [0] * len(cluster.replicas), statuses)
    check("a rolling restart of all three under load: zero failed requests",
          not load.failed_reads and not load.failed_writes and load.reads and load.writes, load.summary())
    ok, detail = acknowledged_are_stored(cluster, load)
    check("every acknowledged create is in the database", ok, detail)


# The replica behind PgBouncer: its timeouts, short so that the check below is quick, and set on the
# role in the suite's database too, since PgBouncer drops the `options` that would carry them.
PGB_LOCK_MS, PGB_STATEMENT_MS = 500, 1500


def psql_through(pgbouncer, sql, options=""):
    """One value of one query through PgBouncer, as a client with PGOPTIONS `options`."""
    env = dict(os.environ, PGPASSWORD=pgbouncer.password, PGOPTIONS=options)
    return subprocess.run(
        ["psql", "-X", "-w", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(pgbouncer.port),
         "-U", pgbouncer.user, "-d", "newsapi", "-c", sql],
        capture_output=True, text=True, env=env, timeout=10,
    )


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by a psql session of its own (straight to
    PostgreSQL, no statement timeout; it waits 5 s at most for the lock) until the block ends."""

    def __init__(self, table):
        self.table = table

    def __enter__(self):
        env = dict(os.environ,
                   PGOPTIONS="-c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c lock_timeout=5s")
        self.proc = subprocess.Popen(
            ["psql", "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", os.environ["CLUSTER_DATABASE_URL"]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.proc.stdin.write(f"begin;\nlock table {self.table} in access exclusive mode;\n\\echo locked\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", f"psql did not take the lock: {line!r}"
        return self

    def __exit__(self, *exc):
        self.proc.stdin.write("rollback;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def through_pgbouncer(cluster, client):
    """One more replica, outside nginx, whose DATABASE_URL is Debian's pgbouncer (deploy/pgbouncer.ini:
    session mode, `ignore_startup_parameters = options`) in front of the same database."""
    db_name = urllib.parse.urlsplit(os.environ["CLUSTER_DATABASE_URL"]).path.lstrip("/")
    role_in_db = f'alter role current_user in database "{db_name}"'
    # Only in the suite's own database (dropped at the end, and its role settings with it).
    cluster.psql(f"{role_in_db} set statement_timeout = '{PGB_STATEMENT_MS}ms'")
    cluster.psql(f"{role_in_db} set lock_timeout = '{PGB_LOCK_MS}ms'")
    pgbouncer = PgBouncer(cluster.workdir)
    replica = Replica("pgbouncer", dict(cluster.env, DATABASE_URL=pgbouncer.url, DATABASE_POOL_SIZE="4",
                                        DATABASE_STATEMENT_TIMEOUT_MS=str(PGB_STATEMENT_MS),
                                        DATABASE_LOCK_TIMEOUT_MS=str(PGB_LOCK_MS)), cluster.workdir)
    cluster.extra += [replica, pgbouncer]
    try:
        pgbouncer.start()
        shown = psql_through(pgbouncer, "show statement_timeout", options="-c statement_timeout=1234")
        check("through pgbouncer, a client's `options` are dropped: SHOW statement_timeout is the role's",
              shown.returncode == 0 and shown.stdout.strip() == f"{PGB_STATEMENT_MS}ms", (shown.stdout, shown.stderr))
        replica.start()
        await asyncio.to_thread(replica.wait_ready)
        async with httpx.AsyncClient(base_url=replica.url, timeout=30) as direct:
            email = f"pgbouncer-{secrets.token_hex(6)}@example.com"
            password = f"pw-{secrets.token_hex(12)}"
            signup, _ = await call(direct, "POST", "/signup", json={"email": email, "password": password})
            signin, _ = await sign_in(direct, email, password)
            token = signin.json().get("access_token") if signin.status_code == 200 else None
            title = f"through pgbouncer {secrets.token_hex(4)}"
            created, _ = await call(direct, "POST", "/news", json={"title": title, "body": "b"}, token=token)
            news_id = created.json().get("id") if created.status_code == 201 else None
            listed, _ = await call(direct, "GET", "/news?limit=100", token=token)
            got, _ = await call(direct, "GET", f"/news/{news_id}", token=token)
            via_nginx, _ = await call(client, "GET", f"/news/{news_id}", token=token)
            statuses = [r.status_code for r in (signup, signin, created, listed, got, via_nginx)]
            check("sign-up, sign-in, create, list, get through pgbouncer (session mode); the item is seen "
                  "through nginx too", statuses == [201, 200, 201, 200, 200, 200]
                  and any(item["id"] == news_id for item in listed.json()["items"])
                  and got.json().get("title") == title, statuses)

            burst = await asyncio.gather(*(
                call(direct, "POST", "/news", json={"title": f"burst {n}", "body": "b"}, token=token) if n % 2
                else call(direct, "GET", f"/news/{news_id}", token=token) for n in range(24)))
            statuses = sorted(r.status_code for r, _ in burst)
            check("24 concurrent creates and reads on a pool of 4 through pgbouncer: all succeed",
                  statuses == [200] * 12 + [201] * 12, statuses)

            with TableLock("news"):
                started = time.monotonic()
                blocked, _ = await call(direct, "GET", f"/news/{news_id}", token=token)
                took = time.monotonic() - started
            print(f"     a read of a locked table through pgbouncer: {blocked.status_code} in {took:.2f} s", flush=True)
            # Cancelled by PostgreSQL (lock_timeout or statement_timeout: 503 "busy", Retry-After: 1),
            # not by the server's own deadline, statement_timeout + 1 s (503 "cannot be reached",
            # Retry-After: 5), which is what a replica whose timeouts were dropped would answer.
            check("the role's lock and statement timeouts apply through pgbouncer: a read of a locked "
                  "table is a 503 'busy' problem with Retry-After: 1",
                  blocked.status_code == 503 and blocked.headers.get("retry-after") == "1"
                  and blocked.headers.get("content-type", "").startswith("application/problem+json"),
                  (blocked.status_code, blocked.headers.get("retry-after"), blocked.text[:200]))
            after, _ = await call(direct, "GET", f"/news/{news_id}", token=token)
            check("and once the lock is gone, the same read is 200", after.status_code == 200, after.status_code)
    finally:
        replica.stop()
        pgbouncer.stop()
        cluster.extra = [p for p in cluster.extra if p not in (replica, pgbouncer)]
        cluster.psql(f"{role_in_db} reset all")


async def run_cluster(settings, scenarios):
    with Cluster(**settings) as cluster:
        print(f"cluster: replicas on ports {[r.port for r in cluster.replicas]}, nginx on {cluster.nginx.port}",
              flush=True)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=cluster.url, timeout=30, limits=limits) as client:
            for scenario in scenarios:
                print(f"== {scenario.__name__}", flush=True)
                started = time.monotonic()
                try:
                    await scenario(cluster, client)
                except Exception as err:  # a scenario that breaks is one failure, the rest still run
                    check(f"{scenario.__name__} ran to its end", False, repr(err))
                print(f"   ({time.monotonic() - started:.1f} s)", flush=True)
        if not all(results):
            cluster.dump_logs()


async def main():
    # The hashing share's cluster first: the last cluster's logs are the ones kept in target/e2e.
    await run_cluster(HASH_SETTINGS, [hashing_share_across_replicas])
    await run_cluster(SETTINGS, [sessions_across_replicas, signout_everywhere, throttle_across_replicas,
                                 idempotent_retry_elsewhere, if_match_race, through_pgbouncer,
                                 kill_one_mid_load, rolling_restart])
    failed = results.count(False)
    print(f"cluster: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
