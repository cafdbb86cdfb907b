"""The machine, read from /proc: CPU time by group (the server, PostgreSQL, the load generator,
everything else) and the server's RSS while a run lasts, and the waits that keep runs apart — until
the server is idle, until PostgreSQL is, until other processes leave the machine quiet.

Settings (environment): QUIET_LIMIT (25: % of one core used by other processes before a run may
start), QUIET_MAX (120: seconds to wait for that, then go on and record what was seen).
"""
import os
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


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
    PostgreSQL, the load generator (wrk, pgbench), and everything else on the machine.

    `groups` (pid -> group) and `comm_groups` (command name -> group) replace that grouping
    (make bench-cluster: its replicas, nginx, its own PostgreSQL clusters by pid, wrk by name)."""

    COMM_GROUPS = {"postgres": "postgres", "wrk": "load", "pgbench": "load"}

    def __init__(self, server_pid, groups=None, comm_groups=None):
        self.server_pid = server_pid
        self.pid_groups = dict(groups or {})
        if server_pid:
            self.pid_groups[server_pid] = "server"
        self.comm_groups = self.COMM_GROUPS if comm_groups is None else comm_groups
        if groups is None:
            self.names = ["server", "postgres", "load"]
        else:
            self.names = list(dict.fromkeys([*self.pid_groups.values(), *self.comm_groups.values()]))
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
            group = self.pid_groups.get(pid) or self.comm_groups.get(comm)
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
        by_group = dict.fromkeys(self.names, 0)
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
