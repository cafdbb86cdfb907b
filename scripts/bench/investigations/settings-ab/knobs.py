#!/usr/bin/env python3
"""A/B runs of server settings that need no change to the code: each configuration gets its own
server start, and the configurations are interleaved round by round (ROUNDS, default 3) so that
a noisy machine hurts them alike; medians are compared with the first configuration.

  knobs.sh --scenario S1 --config 'base:' --config 'pool32:DATABASE_POOL_SIZE=32' \
           --config 'jemalloc:LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2' \
           --config 'fat-lto:BIN=target/bench-lto/release/newsapi'

A configuration is NAME:VAR=value,VAR=value; BIN picks another binary, every other variable goes
to the server's environment. Needs the seeded database of `make bench` (run through knobs.sh).
Writes target/bench/knobs-<time>.json. Settings: ROUNDS (3), DUR (10), WARM (3), KNOBS_PORT.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # scripts/bench
sys.path.insert(0, os.path.join(BENCH, "driver"))
from run import one_run  # noqa: E402
from sample import env_int  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402

ROOT = os.path.abspath(os.path.join(BENCH, "..", ".."))
OUT = os.path.join(ROOT, "target", "bench")


def start(bin_path, port, env, log):
    full = dict(os.environ, LISTEN_ADDR=f"127.0.0.1:{port}", **env)
    p = subprocess.Popen([bin_path], cwd=OUT, env=full, stdout=log, stderr=log)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        if p.poll() is not None:
            raise RuntimeError(f"server exited ({p.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return p
        except OSError:
            pass
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("server not ready in 30 s")


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def parse_config(text):
    name, _, rest = text.partition(":")
    env = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        env[k.strip()] = v.strip()
    bin_path = env.pop("BIN", os.environ.get("KNOBS_BIN", os.path.join(ROOT, "target/release/newsapi")))
    return name, os.path.join(ROOT, bin_path) if not os.path.isabs(bin_path) else bin_path, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", action="append", required=True)
    ap.add_argument("--config", action="append", required=True)
    args = ap.parse_args()
    configs = [parse_config(c) for c in args.config]
    port = int(os.environ.get("KNOBS_PORT", "3186"))
    rounds = env_int("ROUNDS", 3)
    kdir = os.path.join(OUT, "knobs")
    os.makedirs(kdir, exist_ok=True)

    # Accounts once, on the first configuration's binary; the tokens stay valid across restarts
    # (same JWT secret, same database).
    with open(os.path.join(kdir, "server.log"), "a") as log:
        p = start(configs[0][1], port, {"BCRYPT_COST": "4"}, log)
        try:
            subprocess.run([sys.executable, os.path.join(BENCH, "accounts.py"), "--base",
                            f"http://127.0.0.1:{port}", "--style", "newsapi", "--prefix",
                            f"knobs-{int(time.time())}-", "--count", "8", "--creds",
                            os.path.join(kdir, "creds.tsv"), "--tokens",
                            os.path.join(kdir, "tokens.txt")], check=True)
        finally:
            stop(p)
    setup = {
        "targets": {"newsapi": {"base": f"http://127.0.0.1:{port}", "pid": None,
                                "bad_token": "x.y.z",
                                "files": {"ids": os.path.join(OUT, "ids.txt"),
                                          "tokens": os.path.join(kdir, "tokens.txt"),
                                          "words": os.path.join(OUT, "words.txt"),
                                          "creds": os.path.join(kdir, "creds.tsv")},
                                "reset": {"db": os.environ["BENCH_DB"],
                                          "delete": "DELETE FROM news WHERE author_id IN "
                                                    "(SELECT user_id FROM user_credentials)",
                                          "vacuum": "VACUUM ANALYZE news"}}},
        "pgbench": {"host": os.environ["DB_HOST"], "port": int(os.environ["DB_PORT"]),
                    "user": os.environ["DB_USER"]},
    }
    runs = []
    for rnd in range(1, rounds + 1):
        for scen_name in args.scenario:
            scen = next(s for s in SCENARIOS if s[0] == scen_name)
            for name, bin_path, env in configs:
                with open(os.path.join(kdir, f"{name}.log"), "a") as log:
                    p = start(bin_path, port, env, log)
                    setup["targets"]["newsapi"]["pid"] = p.pid
                    try:
                        r = one_run(setup, "newsapi", scen, rnd, kdir)
                    finally:
                        stop(p)
                r["config"] = name
                runs.append(r)
                c = r["cpu_pct_of_one_core"]
                print(f"round {rnd} {scen_name} {name:>12}: {r['rps']:8.1f} req/s  p50 "
                      f"{r['p50_ms']:6.2f}  p99 {r['p99_ms']:7.2f} ms  cpu server {c['server']}"
                      f" (user {c.get('server_user')}) pg {c['postgres']} other {c['other']}",
                      flush=True)
    print()
    summary = []
    for scen_name in args.scenario:
        print(f"{scen_name}: medians over {rounds} rounds")
        print("| config | req/s | vs first | p50 ms | p99 ms | server CPU µs/req | pg CPU µs/req |"
              " other CPU % |")
        print("|---|---|---|---|---|---|---|---|")
        base = None
        for name, _, env in configs:
            rs = [r for r in runs if r["config"] == name and r["scenario"] == scen_name]
            med = lambda k: statistics.median(r[k] for r in rs)
            cpu = lambda g: statistics.median(r["cpu_pct_of_one_core"][g] for r in rs)
            rps = med("rps")
            base = base or rps
            row = {"scenario": scen_name, "config": name, "env": env, "rps": rps,
                   "rps_all": [r["rps"] for r in rs], "p50_ms": med("p50_ms"),
                   "p99_ms": med("p99_ms"), "p99_all": [r["p99_ms"] for r in rs],
                   "server_us": cpu("server") / 100 / rps * 1e6,
                   "pg_us": cpu("postgres") / 100 / rps * 1e6, "other_pct": cpu("other")}
            summary.append(row)
            print(f"| {name} | {rps:.0f} ({', '.join(f'{x:.0f}' for x in row['rps_all'])}) |"
                  f" {rps / base * 100 - 100:+.1f}% | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"
                  f" {row['server_us']:.0f} | {row['pg_us']:.0f} | {row['other_pct']:.0f} |")
        print()
    out = os.path.join(OUT, f"knobs-{time.strftime('%Y%m%dT%H%M%S')}.json")
    with open(out, "w") as f:
        json.dump({"configs": args.config, "scenarios": args.scenario, "rounds": rounds,
                   "dur_s": env_int("DUR", 10), "summary": summary, "runs": runs}, f,
                  indent=1)
    print(f"written {out}")


if __name__ == "__main__":
    main()
