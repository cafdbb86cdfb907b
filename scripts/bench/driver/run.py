#!/usr/bin/env python3
"""Runs the benchmark scenarios with wrk (and pgbench), samples CPU and memory from /proc, and
writes one JSON file plus a table. Standard library only; Linux only; 127.0.0.1 only.

Called by scripts/bench/bench.sh (`make bench`) and scripts/bench/compare.sh
(`make bench-compare`), which prepare the servers, the database and the input files and describe
them in a setup file (JSON):

  driver/run.py run    --setup target/bench/setup.json --out target/bench/results.json
  driver/run.py table  target/bench/results.json        # print the table of an earlier run again

Settings come from the setup file and the environment:
  DUR (10) WARM (3) ROUNDS (1) THREADS (2) CONNS (64) SIGNIN_CONNS (16) WRK_TIMEOUT (30s)
  QUIET_LIMIT (25: % of one core used by other processes before a run may start)
  QUIET_MAX (120: seconds to wait for that, then go on and record what was seen)
  ONLY (comma-separated scenario names, e.g. ONLY=S1,S3; default all)
  STARTUPS (5: how many timed starts per server)

This file orchestrates; the work is in its neighbours: scenarios.py (what each scenario sends),
load.py (wrk, pgbench, start-up and bcrypt timings), sample.py (/proc sampling, waiting for a
quiet machine) and report.py (medians, targets, tables). They import each other by their plain
names: this directory is on sys.path when run.py runs (investigations that reuse them add it).
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

from load import SCENARIO_DIR, bcrypt_times, pgbench, time_starts, wrk
from report import check_targets, medians, table
from sample import Sampler, drain, drain_postgres, env_int, quiet_gate, rss_kb
from scenarios import PB, PB_LABELS, SCENARIOS, lua_env


def one_run(setup, target, scen, rnd, resdir):
    name, label, script, conns, _ = scen
    t = setup["targets"][target]
    base, pid = t["base"], t["pid"]
    if target == PB:  # the PocketBase anchor brings its own wrk script
        script, label = t["script"], PB_LABELS.get(name, label)
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
            bg_result.update(wrk(base, script if target == PB else signin[2],
                                 env_int("SIGNIN_CONNS", 16), dur + 4, bg_env, bg_out))

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
    if spec.get("sqlite"):  # PocketBase: its SQLite file, written while it runs (WAL)
        con = sqlite3.connect(spec["sqlite"], timeout=60)
        with con:
            con.execute(spec["delete"])
        con.close()
        return
    pg = setup["pgbench"]
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg["host"], "-p",
                    str(pg["port"]), "-U", pg["user"], "-d", spec["db"], "-c", spec["delete"],
                    "-c", spec["vacuum"]], check=True, capture_output=True, timeout=600)


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
