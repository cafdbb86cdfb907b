#!/usr/bin/env python3
"""Runs the benchmark scenarios with wrk (and pgbench), samples CPU and memory from /proc, and
writes one JSON file plus a table. Standard library only; Linux only; 127.0.0.1 only.

Called by scripts/bench/bench.sh (`make bench`) and scripts/bench/compare.sh
(`make bench-compare`), which prepare the servers, the database and the input files and describe
them in a setup file (JSON):

  driver.py run    --setup target/bench/setup.json --out target/bench/results.json
  driver.py table  target/bench/results.json        # print the table of an earlier run again

Settings come from the setup file and the environment:
  DUR (10) WARM (3) ROUNDS (1) THREADS (2) CONNS (64) SIGNIN_CONNS (16) WRK_TIMEOUT (30s)
  QUIET_LIMIT (25: % of one core used by other processes before a run may start)
  QUIET_MAX (120: seconds to wait for that, then go on and record what was seen)
  ONLY (comma-separated scenario names, e.g. ONLY=S1,S3; default all)
  STARTUPS (5: how many timed starts per server)
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
HERE = os.path.dirname(os.path.abspath(__file__))
# The wrk scripts, and the pgbench script of P64x2.
SCENARIO_DIR = os.path.join(HERE, "scenarios")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


# ------------------------------------------------------------------------------------------- /proc


def total_busy():
    with open("/proc/stat") as f:
        v = list(map(int, f.readline().split()[1:9]))
    return sum(v) - v[3] - v[4]  # minus idle and iowait


def proc_stat(pid, split=False):
    """(comm, utime+stime in ticks) of a process, threads included, or None; with split,
    (comm, utime, stime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1 : s.rindex(")")]
    rest = s[s.rindex(")") + 2 :].split()
    if split:
        return comm, int(rest[11]), int(rest[12])
    return comm, int(rest[11]) + int(rest[12])


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


class Sampler:
    """Samples, every 0.2 s until stopped: the server's RSS, and CPU time by group — the server,
    PostgreSQL, the load generator (wrk, pgbench), and everything else on the machine."""

    GROUPS = {"postgres": "postgres", "wrk": "load", "pgbench": "load"}

    def __init__(self, server_pid):
        self.server_pid = server_pid
        self.stop_flag = threading.Event()
        self.first = {}
        self.last = {}
        self.group_of = {}
        self.rss_max = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def sample(self, initial):
        for pid in all_pids():
            st = proc_stat(pid)
            if st is None:
                continue
            comm, ticks = st
            if pid == self.server_pid:
                group = "server"
            else:
                group = self.GROUPS.get(comm)
            if group is None:
                continue
            self.group_of[pid] = group
            # A process first seen after the start began during the run: count all of its time.
            self.first.setdefault(pid, ticks if initial else 0)
            self.last[pid] = ticks
        if self.server_pid:
            r = rss_kb(self.server_pid)
            if r:
                self.rss_max = max(self.rss_max, r)
            st = proc_stat(self.server_pid, split=True)
            if st:
                self.server_split_first = getattr(self, "server_split_first", st[1:])
                self.server_split_last = st[1:]

    def loop(self):
        while not self.stop_flag.wait(0.2):
            self.sample(False)

    def start(self):
        self.t0 = time.monotonic()
        self.busy0 = total_busy()
        self.sample(True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        self.sample(False)
        elapsed = time.monotonic() - self.t0
        busy = total_busy() - self.busy0
        by_group = {"server": 0, "postgres": 0, "load": 0}
        for pid, group in self.group_of.items():
            by_group[group] += max(0, self.last[pid] - self.first[pid])
        pct = lambda ticks: round(ticks / HZ / elapsed * 100, 1)
        cpu = {k: pct(v) for k, v in by_group.items()}
        cpu["other"] = round(max(0.0, pct(busy) - sum(cpu.values())), 1)
        if hasattr(self, "server_split_first"):
            # The server's CPU split into user space and kernel (system calls: sockets, epoll,
            # futexes), in % of one core.
            cpu["server_user"] = pct(self.server_split_last[0] - self.server_split_first[0])
            cpu["server_sys"] = pct(self.server_split_last[1] - self.server_split_first[1])
        return {"cpu_pct_of_one_core": cpu, "rss_max_mb": round(self.rss_max / 1024, 1)}


def cpu_of(pid, secs):
    a = proc_stat(pid)
    time.sleep(secs)
    b = proc_stat(pid)
    if not a or not b:
        return 0.0
    return (b[1] - a[1]) / HZ / secs * 100


def drain(pid, limit=3.0, max_secs=120):
    """Waits until the server is idle (requests still queued after wrk stopped, e.g. bcrypt)."""
    if not pid:
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_secs:
        if cpu_of(pid, 0.5) < limit:
            return


def cancel_leftovers(setup, db):
    """Cancels queries still running in the benchmark's own database once a run is over: a client
    that disconnects does not stop PostgreSQL from finishing its query (the LoopBack anchor's
    ILIKE searches run for seconds), and the next run would pay for them. Returns how many."""
    pg = setup["pgbench"]
    r = subprocess.run(["psql", "-X", "-At", "-h", pg["host"], "-p", str(pg["port"]), "-U",
                        pg["user"], "-d", db, "-c",
                        "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE "
                        f"datname = '{db}' AND state = 'active' AND pid <> pg_backend_pid()"],
                       capture_output=True, text=True, timeout=60)
    try:
        return int(r.stdout.strip() or 0)
    except ValueError:
        return None


def drain_postgres(limit=30.0, max_secs=60):
    """Waits until PostgreSQL as a whole uses less than `limit` % of one core."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_secs:
        s = Sampler(0).start()
        time.sleep(0.5)
        if s.stop()["cpu_pct_of_one_core"]["postgres"] < limit:
            return


def quiet_gate(exclude_pids):
    """Waits until CPU used by other processes (not the servers, PostgreSQL or the load generator)
    is below QUIET_LIMIT % of one core over 2 s; gives up after QUIET_MAX s. Returns what it saw."""
    limit = env_float("QUIET_LIMIT", 25)
    max_secs = env_float("QUIET_MAX", 120)
    t0 = time.monotonic()
    while True:
        s = Sampler(0).start()
        for pid in exclude_pids:
            s.group_of[pid] = "server"
            st = proc_stat(pid)
            if st:
                s.first[pid] = st[1]
        time.sleep(2)
        for pid in exclude_pids:
            st = proc_stat(pid)
            if st:
                s.last[pid] = st[1]
        other = s.stop()["cpu_pct_of_one_core"]["other"]
        waited = time.monotonic() - t0
        if other < limit or waited >= max_secs:
            return {"other_pct": other, "waited_s": round(waited, 1)}


# --------------------------------------------------------------------------------------------- wrk


def wrk(base, script, conns, dur, env, out_json, latency=True):
    """Runs wrk for `dur` seconds with a script of scenarios/; returns its JSON summary."""
    assert base.startswith("http://127.0.0.1:"), "loopback targets only"
    if os.path.exists(out_json):
        os.remove(out_json)
    threads = min(env_int("THREADS", 2), conns)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{dur}s",
           "--timeout", os.environ.get("WRK_TIMEOUT", "30s"),
           "-s", os.path.join(SCENARIO_DIR, script)]
    if latency:
        cmd.append("--latency")
    cmd.append(base)
    full_env = dict(os.environ, BENCH_LUA_DIR=SCENARIO_DIR, OUT=out_json, **env)
    with open(out_json + ".txt", "w") as log:
        subprocess.run(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, check=True,
                       timeout=dur + 120)
    with open(out_json) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def pgbench(setup, clients, dur, out_txt, script=None):
    pg = setup["pgbench"]
    cmd = ["pgbench", "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["user"], "-M", "prepared",
           "-c", str(clients), "-j", str(min(env_int("THREADS", 2), clients)), "-T", str(dur)]
    cmd += ["-f", script] if script else ["-S"]
    cmd.append(pg["db"])
    # PostgreSQL here allows 100 connections, and the servers under test (and anything else on the
    # machine) hold some: when 64 more are refused, wait and try again.
    for attempt in range(6):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 120)
        if r.returncode == 0 or "too many clients" not in r.stdout + r.stderr:
            break
        print(f"   pgbench: too many clients, retrying in 10 s ({attempt + 1}/5)", flush=True)
        time.sleep(10)
    with open(out_txt, "w") as f:
        f.write(r.stdout + r.stderr)
    tps = lat = None
    failed = 0
    for line in r.stdout.splitlines():
        if line.startswith("tps = ") and "without initial" in line:
            tps = float(line.split()[2])
        elif line.startswith("latency average"):
            lat = float(line.split("=")[1].split()[0])
        elif line.startswith("number of failed transactions"):
            failed = int(line.split(":")[1].split()[0])
    if r.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed:\n{r.stdout}\n{r.stderr}")
    return {"rps": tps, "mean_ms": lat, "failed": failed}


# ------------------------------------------------------------------------------------ the scenarios

# name, label, script, connections (None: CONNS; "signin": SIGNIN_CONNS; or a number), which
# targets run it.
# Targets: "newsapi" (production bcrypt cost), "newsapi_c10" (a second server of the same binary
# with BCRYPT_COST=10, same database; sign-in only), "loopback" (the anchor).
SCENARIOS = [
    ("S1", "GET /news/{id}, token, random ids", "read-one.lua", None, ["newsapi", "loopback"]),
    ("S2", "GET /news?limit=20, following next_cursor (5 pages)", "list.lua", None,
     ["newsapi", "loopback"]),
    ("S3", "GET /news?q=<word>&limit=20 (100k rows)", "search.lua", None, ["newsapi", "loopback"]),
    ("S3c4", "S3 at 4 connections (a search's own latency, little queueing)", "search.lua", 4,
     ["newsapi"]),
    ("S4", "POST /news (~1.5 KB body)", "create.lua", None, ["newsapi", "loopback"]),
    ("S5", "POST /signin, valid credentials", "signin.lua", "signin",
     ["newsapi", "newsapi_c10", "loopback"]),
    ("S6", "GET /news/{id}, bad token (401)", "read-one.lua", None, ["newsapi", "loopback"]),
    ("S7a", "S1 at 16 connections, alone", "read-one.lua", "signin", ["newsapi", "loopback"]),
    ("S7b", "S1 at 16 connections, during S5 (16 conns)", "read-one.lua", "signin",
     ["newsapi", "loopback"]),
    ("S8", "mixed: 60% one, 30% list, 10% create", "mixed.lua", None, ["newsapi", "loopback"]),
]
EXPECT_NON2XX = {"S6"}


def lua_env(setup, target, scenario):
    t = setup["targets"][target]
    files = t["files"]
    loop = target == "loopback"
    env = {}
    if scenario in ("S1", "S6", "S7a", "S7b", "S8"):
        env.update(IDS_FILE=files["ids"], TOKENS_FILE=files["tokens"],
                   PREFIX="/news-models/" if loop else "/news/")
    if scenario == "S6":
        env["BAD_TOKEN"] = t["bad_token"]
    if scenario == "S2":
        env.update(TOKENS_FILE=files["tokens"], STYLE="skip" if loop else "cursor", PAGES="5")
    if scenario in ("S3", "S3c4"):
        env.update(TOKENS_FILE=files["tokens"], WORDS_FILE=files["words"],
                   STYLE="ilike" if loop else "fts")
    if scenario == "S4":
        env.update(TOKENS_FILE=files["tokens"], PATH_CREATE="/news-models" if loop else "/news")
    if scenario == "S5":
        env["CREDS_FILE"] = files["creds"]
    if scenario == "S8":
        env["STYLE"] = "loopback" if loop else "newsapi"
    return env


def one_run(setup, target, scen, rnd, resdir):
    name, label, script, conns, _ = scen
    t = setup["targets"][target]
    base, pid = t["base"], t["pid"]
    dur, warm = env_int("DUR", 10), env_int("WARM", 3)
    if name == "S5":
        # At cost 12 one round of 16 concurrent sign-ins takes ~2 s: run long enough for many.
        dur = max(dur, env_int("S5_DUR", 20))
    if conns == "signin":
        conns = env_int("SIGNIN_CONNS", 16)
    elif conns is None:
        conns = env_int("CONNS", 64)
    env = lua_env(setup, target, name)
    tag = f"{resdir}/r{rnd}-{target}-{name}"
    servers = [x["pid"] for x in setup["targets"].values() if x.get("pid")]
    quiet = quiet_gate(servers)
    if warm > 0:
        wrk(base, script, conns, warm, env, tag + ".warmup.json", latency=False)
        drain(pid)
        if t.get("db"):
            cancel_leftovers(setup, t["db"])
            drain_postgres()
    rss_idle = rss_kb(pid)
    bg = None
    if name == "S7b":
        # The sign-in storm: started 2 s before the measured reads and ending after them.
        signin = next(s for s in SCENARIOS if s[0] == "S5")
        bg_target = target
        bg_env = lua_env(setup, bg_target, "S5")
        bg_out = tag + ".background-signin.json"
        bg_result = {}

        def storm():
            bg_result.update(wrk(base, signin[2], env_int("SIGNIN_CONNS", 16), dur + 4, bg_env,
                                 bg_out))

        bg = threading.Thread(target=storm)
        bg.start()
        time.sleep(2)
    sampler = Sampler(pid).start()
    res = wrk(base, script, conns, dur, env, tag + ".json")
    res.update(sampler.stop())
    if bg:
        bg.join()
        bg_result["rps_little"] = little(bg_result, env_int("SIGNIN_CONNS", 16))
        res["background_signin"] = bg_result
    drain(pid)
    if t.get("db"):
        res["cancelled_queries_after"] = cancel_leftovers(setup, t["db"])
        drain_postgres()
    if name == "S5":
        res["rps_little"] = little(res, conns)
    if name in ("S4", "S8") and t.get("reset"):
        reset(setup, t["reset"])
    res.update(round=rnd, target=target, scenario=name, label=label, conns=conns, dur_s=dur,
               rss_idle_mb=round(rss_idle / 1024, 1) if rss_idle else None, quiet_before=quiet)
    return res


def little(res, conns):
    """Sign-ins per second by Little's law, connections / mean latency: the server's throughput
    over the busy period. wrk's own req/s also divides by the part of the run after the last
    answer; with 16 sign-ins hashed side by side (they finish together, every ~2 s at cost 12),
    that tail is up to one whole round of sign-ins."""
    return round(conns / (res["mean_ms"] / 1000), 3) if res.get("mean_ms") else None


def reset(setup, spec):
    """Removes the rows a write scenario added, so that every round starts from the seed."""
    pg = setup["pgbench"]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg["host"], "-p",
                    str(pg["port"]), "-U", pg["user"], "-d", spec["db"], "-c", spec["delete"],
                    "-c", spec["vacuum"]], check=True, capture_output=True, timeout=600)


def bcrypt_times(setup):
    tool = setup.get("bcrypt_tool")
    if not tool:
        return {}
    costs = sorted({10, int(setup["bcrypt_cost"])})
    r = subprocess.run([tool] + [str(c) for c in costs], capture_output=True, text=True,
                       check=True, timeout=600)
    return {str(j["cost"]): j for j in map(json.loads, r.stdout.split())}


def pgbench_runs(setup, rnd, resdir):
    """PostgreSQL alone: `pgbench -S -M prepared` at 64 and 16 clients (the ceiling for S1 and
    S7a), and the same with two SELECTs per transaction (what an authenticated request costs when
    it checks its session in a statement of its own, as every one but GET /news/{id} does)."""
    dur, warm = env_int("DUR", 10), env_int("WARM", 3)
    conns, sconns = env_int("CONNS", 64), env_int("SIGNIN_CONNS", 16)
    servers = [x["pid"] for x in setup["targets"].values() if x.get("pid")]
    out = []
    two = os.path.join(SCENARIO_DIR, "pgbench-two-selects.sql")
    for name, clients, script, label in [
        ("P64", conns, None, f"pgbench -S -M prepared, {conns} clients"),
        ("P64x2", conns, two, f"pgbench, 2 SELECTs per transaction, {conns} clients"),
        ("P16", sconns, None, f"pgbench -S -M prepared, {sconns} clients"),
    ]:
        quiet = quiet_gate(servers)
        if warm > 0:
            pgbench(setup, clients, warm, f"{resdir}/r{rnd}-pgbench-{name}.warmup.txt", script)
        sampler = Sampler(0).start()
        res = pgbench(setup, clients, dur, f"{resdir}/r{rnd}-pgbench-{name}.txt", script)
        res.update(sampler.stop())
        res.update(round=rnd, target="pgbench", scenario=name, label=label, conns=clients,
                   dur_s=dur, quiet_before=quiet)
        out.append(res)
    return out


# ------------------------------------------------------------------------------------- start time


def time_starts(spec, n):
    """Starts the server `n` times on a spare port; time from spawn to the first 200 of the
    readiness URL, and RSS at that moment and 1 s later."""
    results = []
    for _ in range(n):
        env = dict(os.environ, **spec["env"])
        t0 = time.monotonic()
        p = subprocess.Popen(spec["cmd"], cwd=spec["cwd"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        ms = None
        while time.monotonic() - t0 < 30 and p.poll() is None:
            try:
                with urllib.request.urlopen(spec["ready_url"], timeout=1) as r:
                    if r.status == 200:
                        ms = (time.monotonic() - t0) * 1000
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.002)
        rss_ready = rss_kb(p.pid)
        time.sleep(1.0)
        rss_1s = rss_kb(p.pid)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        results.append({"ready_ms": round(ms, 1) if ms else None,
                        "rss_at_ready_mb": round((rss_ready or 0) / 1024, 1),
                        "rss_1s_mb": round((rss_1s or 0) / 1024, 1)})
        time.sleep(0.5)
    ok = [r["ready_ms"] for r in results if r["ready_ms"] is not None]
    return {"runs": results, "median_ms": statistics.median(ok) if ok else None,
            "median_rss_1s_mb": statistics.median(r["rss_1s_mb"] for r in results)}


# --------------------------------------------------------------------------------------- summaries

FIELDS = ["rps", "rps_little", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"]


def medians(runs):
    """Median of every numeric field over the rounds, per (target, scenario); min and max of
    req/s and p99 too."""
    groups = {}
    for r in runs:
        groups.setdefault((r["target"], r["scenario"]), []).append(r)
    out = {}
    for (target, scen), rs in groups.items():
        m = {"rounds": len(rs), "label": rs[0]["label"], "conns": rs[0]["conns"]}
        for k in FIELDS:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                m[k] = round(statistics.median(vals), 3)
        for k in ("rps", "p99_ms"):
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                m[k + "_range"] = [round(min(vals), 2), round(max(vals), 2)]
        m["non2xx"] = [r.get("non2xx", r.get("failed", 0)) for r in rs]
        m["requests"] = [r.get("requests") for r in rs]
        m["socket_errors"] = [sum(r.get(k, 0) for k in ("connect_err", "read_err", "write_err",
                                                          "timeout_err")) for r in rs]
        m["rss_max_mb"] = max((r.get("rss_max_mb") or 0) for r in rs)
        for g in ("server", "server_user", "server_sys", "postgres", "load", "other"):
            vals = [r["cpu_pct_of_one_core"][g] for r in rs if g in r["cpu_pct_of_one_core"]]
            if vals:
                m.setdefault("cpu", {})[g] = round(statistics.median(vals), 1)
        if m.get("rps"):
            # CPU time per request in microseconds, by group (from the medians).
            m["cpu_us_per_request"] = {g: round(v / 100 / m["rps"] * 1e6)
                                       for g, v in m["cpu"].items()}
        bgs = [r["background_signin"]["rps"] for r in rs if r.get("background_signin")]
        if bgs:
            m["background_signin_rps"] = round(statistics.median(bgs), 2)
        out.setdefault(target, {})[scen] = m
    return out


def check_targets(res):
    """The issue's targets, each with the figure it is judged on and whether it is met."""
    med = res["medians"]
    na = med.get("newsapi", {})
    lb = med.get("loopback", {})
    pg = med.get("pgbench", {})
    out = []

    def add(name, value, goal, met):
        out.append({"target": name, "value": value, "goal": goal,
                    "met": None if met is None else bool(met)})

    for s in ("S1", "S2", "S4"):
        if s in na:
            p99 = na[s].get("p99_ms")
            add(f"{s} p99 at {na[s]['conns']} conns", f"{p99:.2f} ms", "< 10 ms", p99 < 10)
            if s in lb:
                ratio = na[s]["rps"] / lb[s]["rps"]
                add(f"{s} req/s vs LoopBack", f"{ratio:.1f}x ({na[s]['rps']:.0f} / "
                    f"{lb[s]['rps']:.0f})", ">= 10x", ratio >= 10)
    if "S1" in na and "P64" in pg:
        share = na["S1"]["rps"] / pg["P64"]["rps"]
        add("S1 req/s vs pgbench -S (64 clients)", f"{share * 100:.0f}% ({na['S1']['rps']:.0f} / "
            f"{pg['P64']['rps']:.0f})", ">= 60%", share >= 0.6)
    for s in ("S3", "S3c4"):
        if s in na:
            p99 = na[s]["p99_ms"]
            add(f"{s} p99 at {na[s]['conns']} conns", f"{p99:.2f} ms", "< 20 ms", p99 < 20)
    bc = res.get("bcrypt", {})
    for target, cost in (("newsapi", res["setup"].get("bcrypt_cost")), ("newsapi_c10", 10)):
        if "S5" in med.get(target, {}) and str(cost) in bc:
            ideal = NCPU / (bc[str(cost)]["median_ms"] / 1000)
            m = med[target]["S5"]
            share = m["rps_little"] / ideal
            add(f"S5 sign-ins/s vs bcrypt ideal, cost {cost}",
                f"{share * 100:.0f}% ({m['rps_little']:.2f} by Little's law, wrk {m['rps']:.2f};"
                f" ideal {ideal:.2f})", ">= 90%", share >= 0.9)
    if "S7a" in na and "S7b" in na:
        ratio = na["S7b"]["p99_ms"] / na["S7a"]["p99_ms"]
        add("S7 p99 during sign-ins vs alone", f"{ratio:.1f}x ({na['S7b']['p99_ms']:.2f} / "
            f"{na['S7a']['p99_ms']:.2f} ms)", "<= 3x", ratio <= 3)
    rss = res.get("rss", {}).get("newsapi", {}).get("max_under_load_mb")
    if rss is not None:
        add("RSS under load", f"{rss:.1f} MB", "< 64 MB", rss < 64)
    st = res.get("startup", {}).get("newsapi", {}).get("median_ms")
    if st is not None:
        add("ready after start (migrations applied)", f"{st:.0f} ms", "< 500 ms", st < 500)
    return out


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def table(res):
    med = res["medians"]
    lines = []
    s = res["setup"]
    lines.append(f"newsapi benchmark — {res['finished_utc']} — {res['rounds']} round(s) of "
                 f"{res['dur_s']} s per run ({res['warm_s']} s warm-up), wrk -t{res['threads']}; "
                 f"load average before: {res['loadavg_before']}")
    lines.append(f"seed: {s.get('seed', {})}")
    if s.get("source"):
        lines.append(f"source: commit {s['source'].get('commit')}, uncommitted: "
                     f"{', '.join(x.strip() for x in s['source'].get('uncommitted', [])) or 'none'}")
    lines.append("")
    lines.append("| scenario | what | conns | req/s | p50 ms | p90 ms | p99 ms | non-2xx / requests |"
                 " CPU % of one core: server (user+sys) / pg / wrk / other |"
                 " CPU µs per request: server / pg | RSS max MB |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    order = [x[0] for x in SCENARIOS]

    def row(target, scen, m, label=None):
        nonok = "/".join(str(x) for x in m["non2xx"]) + " / " + "/".join(
            str(x) for x in m["requests"] if x is not None)
        c = m["cpu"]
        us = m.get("cpu_us_per_request", {})
        rps = fmt(m.get("rps"), 2 if scen == "S5" else 1)
        if m.get("rps_little"):
            rps += f" ({m['rps_little']:.2f}*)"
        return (f"| {scen}{'' if target == 'newsapi' else ' ' + target} | {label or m['label']} |"
                f" {m['conns']} | {rps} | {fmt(m.get('p50_ms'), 2)} |"
                f" {fmt(m.get('p90_ms'), 2)} | {fmt(m.get('p99_ms'), 2)} | {nonok} |"
                f" {c['server']} ({c.get('server_user', '-')}+{c.get('server_sys', '-')}) /"
                f" {c['postgres']} / {c['load']} / {c['other']} |"
                f" {us.get('server', '-')} / {us.get('postgres', '-')} |"
                f" {fmt(m.get('rss_max_mb') or None)} |")

    for scen in order:
        if scen in med.get("newsapi", {}):
            lines.append(row("newsapi", scen, med["newsapi"][scen]))
        if scen == "S5" and "S5" in med.get("newsapi_c10", {}):
            lines.append(row("newsapi_c10", "S5", med["newsapi_c10"]["S5"],
                             "POST /signin at bcrypt cost 10 (LoopBack's cost)"))
    for scen, m in med.get("pgbench", {}).items():
        us = m.get("cpu_us_per_request", {})
        lines.append(f"| {scen} | {m['label']} | {m['conns']} | {fmt(m.get('rps'))} | - | - | - |"
                     f" {'/'.join(map(str, m['non2xx']))} failed | - / {m['cpu']['postgres']} /"
                     f" {m['cpu']['load']} / {m['cpu']['other']} | - / {us.get('postgres', '-')} |"
                     f" - |")
    if any(m.get("rps_little") for t in med.values() for m in t.values()):
        lines.append("")
        lines.append("\\* sign-ins/s by Little's law (connections / mean latency): the server's rate"
                     " while busy, without wrk's idle tail after the last answer.")
        lines.append("")
    if "loopback" in med:
        lines.append("")
        lines.append("LoopBack anchor, same scenarios (S2: limit/skip pages, unordered; S3: ILIKE,"
                     " no full-text search; S5: bcryptjs cost 10):")
        lines.append("")
        lines.append("| scenario | conns | LoopBack req/s | LoopBack p50 ms | LoopBack p99 ms |"
                     " non-2xx | newsapi req/s | newsapi p99 ms | req/s ratio | node CPU % |"
                     " RSS max MB |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for scen in order:
            lm = med["loopback"].get(scen)
            nm = med.get("newsapi", {}).get(scen)
            if scen == "S5":
                nm = med.get("newsapi_c10", {}).get("S5", nm)
            if not lm:
                continue
            ratio = nm["rps"] / lm["rps"] if nm and lm.get("rps") else None
            lines.append(
                f"| {scen} | {lm['conns']} | {fmt(lm.get('rps'))} | {fmt(lm.get('p50_ms'), 2)} |"
                f" {fmt(lm.get('p99_ms'), 2)} | {'/'.join(map(str, lm['non2xx']))} |"
                f" {fmt(nm.get('rps') if nm else None)} | {fmt(nm.get('p99_ms') if nm else None, 2)}"
                f" | {fmt(ratio)}x | {lm['cpu']['server']} | {fmt(lm.get('rss_max_mb') or None)} |")
    lines.append("")
    for target, st in res.get("startup", {}).items():
        lines.append(f"start to ready, {target}: median {fmt(st['median_ms'])} ms over "
                     f"{len(st['runs'])} starts ({', '.join(fmt(r['ready_ms']) for r in st['runs'])}"
                     f" ms); RSS 1 s after start {fmt(st['median_rss_1s_mb'])} MB")
    for target, r in res.get("rss", {}).items():
        lines.append(f"RSS, {target}: idle after start {fmt(r.get('idle_fresh_mb'))} MB, max under"
                     f" load {fmt(r.get('max_under_load_mb'))} MB, peak (VmHWM) "
                     f"{fmt(r.get('hwm_mb'))} MB, idle after the runs {fmt(r.get('idle_after_mb'))}"
                     " MB")
    bc = res.get("bcrypt", {})
    if bc:
        lines.append("bcrypt, one verification on one core: " + ", ".join(
            f"cost {c}: {v['median_ms']:.1f} ms (ideal {NCPU} cores / that = "
            f"{NCPU / (v['median_ms'] / 1000):.2f}/s)" for c, v in sorted(bc.items())))
    for f in res.get("failed", []):
        lines.append(f"FAILED run: round {f['round']} {f['target']} {f.get('scenario', '')}: "
                     f"{f['error'].strip().splitlines()[-1] if f['error'].strip() else '?'}")
    lines.append("")
    lines.append("| target | measured | goal | met |")
    lines.append("|---|---|---|---|")
    for t in res.get("targets", []):
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['target']} | {t['value']} | {t['goal']} | {met} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def save_partial(out, res):
    """The runs so far, so that an interrupted benchmark still leaves its figures."""
    with open(os.path.splitext(out)[0] + ".partial.json", "w") as f:
        json.dump(res, f)


def run(args):
    with open(args.setup) as f:
        setup = json.load(f)
    resdir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "runs")
    os.makedirs(resdir, exist_ok=True)
    rounds = env_int("ROUNDS", 1)
    only = set(filter(None, os.environ.get("ONLY", "").split(",")))
    targets = [t for t in setup["targets"]]
    res = {"setup": {k: v for k, v in setup.items() if k not in ("startup",)},
           "rounds": rounds, "dur_s": env_int("DUR", 10), "warm_s": env_int("WARM", 3),
           "threads": env_int("THREADS", 2), "loadavg_before": open("/proc/loadavg").read().split()[:3],
           "machine": setup.get("machine", {}), "runs": []}
    quiet_gate([x["pid"] for x in setup["targets"].values() if x.get("pid")])
    print("== timing one bcrypt verification", flush=True)
    res["bcrypt"] = bcrypt_times(setup)
    print(f"   {res['bcrypt']}", flush=True)

    # Start-up time first, while the machine is as quiet as it gets.
    res["startup"] = {}
    for target, spec in setup.get("startup", {}).items():
        n = env_int("STARTUPS", 5) if target == "newsapi" else min(3, env_int("STARTUPS", 5))
        print(f"== start to ready: {target} x{n}", flush=True)
        res["startup"][target] = time_starts(spec, n)
        print(f"   median {res['startup'][target]['median_ms']} ms", flush=True)

    idle = {t: rss_kb(x["pid"]) for t, x in setup["targets"].items() if x.get("pid")}
    for rnd in range(1, rounds + 1):
        for scen in SCENARIOS:
            if only and scen[0] not in only:
                continue
            for target in targets:
                if target not in scen[4]:
                    continue
                print(f"== round {rnd}/{rounds} {scen[0]} {target}: {scen[1]}", flush=True)
                try:
                    r = one_run(setup, target, scen, rnd, resdir)
                except Exception as err:  # one failed run must not lose the others
                    print(f"   FAILED: {err}", flush=True)
                    res.setdefault("failed", []).append(
                        {"round": rnd, "target": target, "scenario": scen[0], "error": str(err)})
                    save_partial(args.out, res)
                    continue
                res["runs"].append(r)
                save_partial(args.out, res)
                print(f"   {r['rps']:.1f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms,"
                      f" non-2xx {r['non2xx']}/{r['requests']}, cpu {r['cpu_pct_of_one_core']},"
                      f" rss max {r['rss_max_mb']} MB, other-before {r['quiet_before']}",
                      flush=True)
            if scen[0] == "S1" and setup.get("pgbench") and (not only or "P" in only or "S1" in only):
                print(f"== round {rnd}/{rounds} pgbench", flush=True)
                try:
                    for r in pgbench_runs(setup, rnd, resdir):
                        res["runs"].append(r)
                        print(f"   {r['scenario']}: {r['rps']:.0f} tps, cpu "
                              f"{r['cpu_pct_of_one_core']}", flush=True)
                except Exception as err:
                    print(f"   FAILED: {err}", flush=True)
                    res.setdefault("failed", []).append(
                        {"round": rnd, "target": "pgbench", "error": str(err)})
                save_partial(args.out, res)
    res["medians"] = medians(res["runs"])
    res["rss"] = {}
    for t, x in setup["targets"].items():
        if not x.get("pid"):
            continue
        runs = [r for r in res["runs"] if r["target"] == t]
        res["rss"][t] = {
            "idle_fresh_mb": round((idle.get(t) or 0) / 1024, 1),
            "max_under_load_mb": max((r.get("rss_max_mb") or 0) for r in runs) if runs else None,
            "hwm_mb": round((rss_kb(x["pid"], "VmHWM") or 0) / 1024, 1),
            "idle_after_mb": round((rss_kb(x["pid"]) or 0) / 1024, 1),
        }
    res["finished_utc"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    res["targets"] = check_targets(res)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    text = table(res)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(text + "\n")
    print()
    print(text)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--setup", required=True)
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("results")
    args = ap.parse_args()
    if args.cmd == "run":
        run(args)
    else:
        with open(args.results) as f:
            print(table(json.load(f)))


if __name__ == "__main__":
    sys.exit(main())
