"""Starting and stopping the processes of a local cluster: free loopback ports, children that die
with their parent, readiness waits, and deploy/nginx.conf filled in for a set of replicas.

Shared by tests/cluster/harness.py (the cluster suite) and scripts/bench/driver/cluster.py
(`make bench-cluster`). Standard library only: the benchmark runs on the system Python, without
the test venv's packages. Import it with this directory on sys.path.
"""
import ctypes
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn of a child: the kernel sends it SIGKILL should this process die first."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc, sig=signal.SIGTERM, timeout=15):
    """Sends `sig` to a still running child, waits up to `timeout` s, then kills it."""
    if proc and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(proc, url, what, timeout=30.0):
    """Polls `url` until it answers 200; fails if `proc` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout} s")


def wait_listening(proc, port, what, timeout=10.0):
    """Waits until 127.0.0.1:`port` accepts connections; fails if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen within {timeout} s")


def fill_template(template, values, comment):
    """The template's text with its @…@ placeholders replaced (not in comment lines, which name them)."""
    lines = []
    for line in template.read_text().splitlines():
        if not line.lstrip().startswith(comment):
            for placeholder, value in values.items():
                line = line.replace(placeholder, value)
            assert "@" not in line.replace("@unavailable", ""), f"a placeholder left in {line!r}"
        lines.append(line)
    return "\n".join(lines) + "\n"


class Nginx:
    """Debian's nginx with deploy/nginx.conf in front of replicas on the given ports, in the
    foreground, with a prefix directory of its own and a free listen port."""

    def __init__(self, prefix, ports):
        self.prefix = pathlib.Path(prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        # The workers run as `nobody` and write temporary files under the prefix.
        os.chmod(self.prefix.parent, 0o755)
        os.chmod(self.prefix, 0o755)
        self.port = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
        values = {"@PREFIX@": str(self.prefix), "@LISTEN@": f"127.0.0.1:{self.port}", "@SERVERS@": servers}
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(fill_template(NGINX_TEMPLATE, values, "#"))
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        nginx = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
        args = ["-p", str(self.prefix), "-c", str(self.conf), "-e", str(self.prefix / "error.log")]
        check = subprocess.run([nginx, "-t", "-q", *args], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration: {check.stderr}")
        with open(self.prefix / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([nginx, *args, "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         preexec_fn=die_with_parent)
        wait_listening(self.proc, self.port, f"nginx ({self.prefix})")
        return self

    def stop(self):
        stop(self.proc, signal.SIGQUIT, timeout=10)  # graceful: finish what is in flight
