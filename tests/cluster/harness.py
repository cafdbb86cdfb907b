"""The cluster suite's harness: three newsapi replicas on one database behind Debian's nginx.

`Cluster` starts the replicas (the release binary, NEWSAPI_BIN) on free loopback ports with the
same settings, and nginx with deploy/nginx.conf filled in (the replicas' ports, a free listen port,
a prefix directory of its own), as a foreground process. Every request of the suite goes through
nginx; which replica served one is read from the replicas' own access lines (each request carries
an `X-Request-Id` of the suite's making, and every replica logs the ids it served). Everything it
starts is stopped when the `with` block ends, whatever happens; the children also get SIGKILL from
the kernel should this process die first (PR_SET_PDEATHSIG).

`PgBouncer` runs Debian's pgbouncer with deploy/pgbouncer.ini filled in, in the foreground, for
the scenario that puts one more replica behind it.

Environment (set by tests/cluster/run.sh): CLUSTER_DATABASE_URL (a fresh database, dropped by
run.sh), NEWSAPI_BIN, NGINX_BIN, PGBOUNCER_BIN.
"""

import os
import pathlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
# Shared with make bench-cluster (scripts/bench/driver/cluster.py).
from procs import Nginx, die_with_parent, fill_template, free_port, stop, wait_listening, wait_ready  # noqa: E402

PGBOUNCER_TEMPLATE = ROOT / "deploy" / "pgbouncer.ini"
REPLICAS = 3
READY_TIMEOUT = 30.0


def request_id():
    return f"cluster-{uuid.uuid4()}"


class Replica:
    """One server process; restarted on the same port with the same settings."""

    def __init__(self, index, env, workdir):
        self.index = index
        self.port = free_port()
        self.env = dict(env, LISTEN_ADDR=f"127.0.0.1:{self.port}")
        self.log_path = workdir / f"replica-{index}.log"
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [os.environ["NEWSAPI_BIN"], "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()

    def wait_ready(self):
        """Polls the replica's own /readyz (not through nginx) until it answers 200."""
        wait_ready(self.proc, f"{self.url}/readyz", f"replica {self.index}", READY_TIMEOUT)

    def terminate(self, timeout=60):
        """SIGTERM, then waits for the process to exit; returns its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        self.proc.kill()
        return self.proc.wait(timeout=10)

    def served(self, rid):
        """Whether this replica's log names the request id (its access line does)."""
        try:
            return rid in self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def stop(self):
        stop(self.proc)


class PgBouncer:
    """Debian's pgbouncer in front of the suite's database, configured from deploy/pgbouncer.ini, in
    the foreground; as the postgres user when this runs as root (pgbouncer refuses root). Clients
    reach the database as `newsapi` with the suite's user and a password of the suite's making (the
    auth file's), which pgbouncer also uses should PostgreSQL ask for one."""

    def __init__(self, workdir):
        self.prefix = workdir / "pgbouncer"
        self.prefix.mkdir()
        os.chmod(workdir, 0o755)
        os.chmod(self.prefix, 0o755)
        self.port = free_port()
        db = urllib.parse.urlsplit(os.environ["CLUSTER_DATABASE_URL"])
        self.user = urllib.parse.unquote(db.username or "postgres")
        self.password = urllib.parse.unquote(db.password) if db.password else secrets.token_hex(16)
        values = {"@DB_HOST@": db.hostname or "127.0.0.1", "@DB_PORT@": str(db.port or 5432),
                  "@DB_NAME@": db.path.lstrip("/"), "@LISTEN_ADDR@": "127.0.0.1",
                  "@LISTEN_PORT@": str(self.port), "@PREFIX@": str(self.prefix)}
        self.conf = self.prefix / "pgbouncer.ini"
        self.conf.write_text(fill_template(PGBOUNCER_TEMPLATE, values, ";"))
        quoted = lambda v: '"' + v.replace('"', '""') + '"'
        (self.prefix / "userlist.txt").write_text(f"{quoted(self.user)} {quoted(self.password)}\n")
        self.log_path = workdir / "pgbouncer.log"
        self.as_user = None
        if os.getuid() == 0:
            import pwd

            self.as_user = pwd.getpwnam("postgres")
            for path in (self.prefix, self.conf, self.prefix / "userlist.txt"):
                os.chown(path, self.as_user.pw_uid, self.as_user.pw_gid)
        os.chmod(self.prefix / "userlist.txt", 0o600)
        self.proc = None

    @property
    def url(self):
        """DATABASE_URL for a replica that goes through pgbouncer."""
        auth = f"{urllib.parse.quote(self.user, safe='')}:{urllib.parse.quote(self.password, safe='')}"
        return f"postgres://{auth}@127.0.0.1:{self.port}/newsapi"

    def _child_setup(self):
        if self.as_user:
            os.setgroups([])
            os.setgid(self.as_user.pw_gid)
            os.setuid(self.as_user.pw_uid)
        die_with_parent()  # after setuid, which would clear it

    def start(self):
        self.proc = subprocess.Popen(
            [os.environ.get("PGBOUNCER_BIN", "/usr/sbin/pgbouncer"), str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            preexec_fn=self._child_setup,
        )
        try:
            wait_listening(self.proc, self.port, "pgbouncer")
        except RuntimeError as err:
            raise RuntimeError(f"{err}: {self.log_path.read_text(errors='replace')}") from None

    def stop(self):
        stop(self.proc, timeout=10)


class Cluster:
    """Three replicas behind nginx; use as `with Cluster() as cluster:`."""

    def __init__(self, **settings):
        self.tmp = tempfile.TemporaryDirectory(prefix="newsapi-cluster.")
        self.workdir = pathlib.Path(self.tmp.name)
        (self.workdir / "mail").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNIN_", "SIGNUP_", "HASH_"))}
        # What must match across replicas: the database, the JWT secret, issuer and audience (a
        # token from one replica is verified by the others), and the limits counted in the database.
        env.update(
            DATABASE_URL=os.environ["CLUSTER_DATABASE_URL"],
            JWT_SECRET=secrets.token_hex(32),
            BCRYPT_COST="4",
            TRUSTED_PROXIES="127.0.0.1",
            LOG_FORMAT="json",
            RUST_LOG="warn,newsapi::access=info",
            MAIL_OUTBOX_DIR=str(self.workdir / "mail"),
            DATABASE_POOL_SIZE="8",
            # Longer than nginx's upstream keepalive_timeout (5 s, deploy/nginx.conf): a stopping
            # replica keeps its idle connections until nginx closes them, answering any request
            # on one with `Connection: close`, so a rolling restart loses nothing.
            SHUTDOWN_IDLE_LINGER_SECS="8",
        )
        env.update(settings)
        self.env = env
        self.replicas = [Replica(i, env, self.workdir) for i in range(REPLICAS)]
        self.nginx = None
        self.extra = []  # what a scenario started besides (stopped here too, should it not)

    def __enter__(self):
        try:
            for replica in self.replicas:
                replica.start()
            for replica in self.replicas:
                replica.wait_ready()
            self.nginx = Nginx(self.workdir / "nginx", [r.port for r in self.replicas]).start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for process in self.extra:
            process.stop()
        if self.nginx:
            self.nginx.stop()
        for replica in self.replicas:
            replica.stop()
        if exc[0] is not None:
            self.dump_logs()
        # The logs outlive the run, for a look after a failure: target/e2e/cluster/.
        keep = ROOT / "target" / "e2e" / "cluster"
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for path in list(self.workdir.glob("*.log")) + list((self.workdir / "nginx").glob("*.log")):
            shutil.copy(path, keep / ("nginx-" + path.name if path.parent.name == "nginx" else path.name))
        self.tmp.cleanup()

    def dump_logs(self, lines=30):
        for path in sorted(self.workdir.glob("*.log")) + [self.workdir / "nginx" / "error.log"]:
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            print(f"--- last lines of {path.name}:")
            print("\n".join(tail))

    @property
    def url(self):
        return self.nginx.url

    def replica_of(self, rid, wait=2.0):
        """The index of the replica that served request `rid`, or None (waits briefly for its log)."""
        deadline = time.monotonic() + wait
        while True:
            found = [r.index for r in self.replicas if r.served(rid)]
            if found:
                assert len(found) == 1, f"request {rid} served by replicas {found}"
                return found[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def nginx_errors(self):
        """The lines of nginx's error log so far."""
        try:
            return (self.nginx.prefix / "error.log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def psql(self, sql):
        """Rows of one query on the suite's database, as lists of strings."""
        out = subprocess.run(
            ["psql", "-X", "-w", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", os.environ["CLUSTER_DATABASE_URL"],
             "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]
