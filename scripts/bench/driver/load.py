"""The load generators and the timed measurements: wrk with a scenario script, pgbench, the
server's start-up time, and one bcrypt verification (scripts/bench/bcrypt-time).

Settings (environment): THREADS (2), WRK_TIMEOUT (30s).
"""
import json
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request

from sample import env_int, rss_kb

# scripts/bench, and the wrk scripts (and the pgbench script of P64x2) in it.
BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO_DIR = os.path.join(BENCH_DIR, "scenarios")


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
        res = json.loads(f.read().strip().splitlines()[-1])
    # The anchors' own wrk scripts name wrk's count of non-2xx/3xx answers non2xx3xx.
    if "non2xx3xx" in res:
        res["non2xx"] = res.pop("non2xx3xx")
    return res


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


def bcrypt_times(setup):
    tool = setup.get("bcrypt_tool")
    if not tool:
        return {}
    costs = sorted({10, int(setup["bcrypt_cost"])})
    r = subprocess.run([tool] + [str(c) for c in costs], capture_output=True, text=True,
                       check=True, timeout=600)
    return {str(j["cost"]): j for j in map(json.loads, r.stdout.split())}


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
