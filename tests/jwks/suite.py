"""A third-party library verifies our access tokens by itself, across a signing-key rotation.

Run by tests/jwks/run.sh through scripts/with-test-server.sh, which exports BASE_URL (a server
with the default HS256), NEWSAPI_BIN, DATABASE_URL and the rest of that server's settings. This
suite starts servers of its own with JWT_ALGORITHM=EdDSA on the same database (and no JWT_SECRET),
one after the other, with keys made by `openssl` as the README's rotation steps make them:

1. the HS256 server publishes an empty set; bad key settings stop `newsapi serve` with one line
   naming the variable;
2. key A: a token signed in for verifies with PyJWT's PyJWKClient against /.well-known/jwks.json,
   its `kid` is the RFC 7638 thumbprint of the published key;
3. rotation, key B with A's public key in JWT_PREVIOUS_PUBLIC_KEY_FILES: the old token still
   verifies with PyJWT and is accepted by the server; a new token has B's kid and verifies too;
   forgeries (HS256 with the public key as secret, another key under B's kid) are 401;
4. A dropped: the old token is 401 and PyJWKClient no longer finds its key; the new one works.

Prints one line per check and `jwks: N passed, M failed`; exits non-zero when a check failed.
Stops every server it started, whatever happens.
"""

import base64
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BASE_URL = os.environ["BASE_URL"]
NEWSAPI_BIN = os.environ["NEWSAPI_BIN"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "lib"))
from procs import free_port, stop  # noqa: E402

LOGS = ROOT / "target" / "e2e"
JWKS_PATH = "/.well-known/jwks.json"
PASSWORD = "correct horse battery staple"
READY_SECS = 30

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + str(detail)}", flush=True)
    return bool(ok)


def call(method, url, body=None, token=None, headers=None):
    """(status, headers, parsed JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, answer_headers, raw = err.code, err.headers, err.read()
    try:
        return status, answer_headers, json.loads(raw)
    except ValueError:
        return status, answer_headers, None


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(x):
    """RFC 7638 thumbprint of an Ed25519 JWK (RFC 8037 section 2), computed here, not by PyJWT."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Keys:
    """Key files in a temporary directory, made by openssl as the README says."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)

    def new(self, name):
        private = self.directory / f"{name}.key"
        public = self.directory / f"{name}.pub"
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(private))
        openssl("pkey", "-in", str(private), "-pubout", "-out", str(public))
        return private, public

    @staticmethod
    def raw_public(public):
        key = serialization.load_pem_public_key(public.read_bytes())
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Servers:
    """EdDSA servers on the suite's database, one at a time."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.process = None
        self.base = None
        self.count = 0

    def environment(self, private=None, previous=()):
        env = dict(os.environ)
        # EdDSA needs no JWT_SECRET: prove it by leaving none (nor a .env: the cwd is a temp dir).
        env.pop("JWT_SECRET", None)
        env["JWT_ALGORITHM"] = "EdDSA"
        for name in ("JWT_PRIVATE_KEY_FILE", "JWT_PREVIOUS_PUBLIC_KEY_FILES"):
            env.pop(name, None)
        if private is not None:
            env["JWT_PRIVATE_KEY_FILE"] = str(private)
        if previous:
            env["JWT_PREVIOUS_PUBLIC_KEY_FILES"] = ",".join(str(p) for p in previous)
        return env

    def start(self, private, previous=()):
        self.stop()
        self.count += 1
        port = free_port()
        env = self.environment(private, previous)
        env["LISTEN_ADDR"] = f"127.0.0.1:{port}"
        self.log = LOGS / f"jwks-server-{self.count}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [NEWSAPI_BIN, "serve"], env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_SECS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if call("GET", f"{self.base}/readyz")[0] == 200:
                    return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        return False

    def stop(self):
        stop(self.process)
        self.process = None

    def refuses_to_start(self, env):
        """(exit status, stderr lines) of `newsapi serve` with `env`, which should stop at once."""
        env = dict(env)
        env["LISTEN_ADDR"] = f"127.0.0.1:{free_port()}"
        try:
            done = subprocess.run(
                [NEWSAPI_BIN, "serve"], env=env, cwd=self.workdir, capture_output=True, text=True, timeout=30
            )
        except subprocess.TimeoutExpired:
            return None, ["still running after 30 s"]
        return done.returncode, done.stderr.strip().splitlines()


def sign_in(base, email):
    """A fresh account's access token on the server at `base` (sign-up when the email is new)."""
    call("POST", f"{base}/signup", {"email": email, "password": PASSWORD})
    status, _, tokens = call("POST", f"{base}/signin", {"email": email, "password": PASSWORD})
    if status != 200:
        raise RuntimeError(f"sign-in of {email} answered {status}: {tokens}")
    return tokens["access_token"]


def verify_with_pyjwt(base, token):
    """PyJWT verifies `token` with the key PyJWKClient finds by its kid at base's JWKS."""
    client = jwt.PyJWKClient(f"{base}{JWKS_PATH}", cache_keys=False, cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience="newsapi",
        issuer="newsapi",
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
    )


def pyjwt_verifies(base, token):
    try:
        return verify_with_pyjwt(base, token), None
    except jwt.PyJWTError as err:
        return None, f"{type(err).__name__}: {err}"


def whoami(base, token):
    status, headers, body = call("GET", f"{base}/whoami", token=token)
    return status, headers.get("content-type", ""), body


def is_401_problem(base, token):
    status, content_type, body = whoami(base, token)
    return status == 401 and content_type.startswith("application/problem+json"), f"{status} {content_type} {body}"


def published(base):
    status, headers, body = call("GET", f"{base}{JWKS_PATH}")
    return status, headers, body


def main():
    def on_signal(signum, _frame):
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    LOGS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="newsapi-jwks-") as tmp:
        servers = Servers(tmp)
        try:
            run_checks(Keys(tmp), servers, tmp)
        except Exception as err:  # a crash is a failed check, with the servers still stopped
            check("the suite ran to its end", False, f"{type(err).__name__}: {err}")
        finally:
            servers.stop()
    failed = results.count(False)
    if failed:
        print(f"     server logs: {LOGS}/jwks-server-*.log", flush=True)
    print(f"jwks: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


def run_checks(keys, servers, tmp):
    # 1. The default server (HS256) publishes no key; bad key settings stop start-up.
    status, headers, body = published(BASE_URL)
    check("with HS256 the JWK set is empty", status == 200 and body == {"keys": []}, f"{status} {body}")
    check(
        "the JWK set may be cached for 5 minutes",
        headers.get("cache-control") == "public, max-age=300",
        headers.get("cache-control"),
    )

    garbage = pathlib.Path(tmp) / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    key_a, public_a = keys.new("a")
    for case, env, name in [
        ("EdDSA without a key", servers.environment(), "JWT_PRIVATE_KEY_FILE"),
        ("a missing key file", servers.environment(pathlib.Path(tmp) / "missing.key"), "JWT_PRIVATE_KEY_FILE"),
        ("a key file that is no key", servers.environment(garbage), "JWT_PRIVATE_KEY_FILE"),
        ("a public key as the private key", servers.environment(public_a), "JWT_PRIVATE_KEY_FILE"),
        (
            "a private key as a previous public key",
            servers.environment(key_a, [key_a]),
            "JWT_PREVIOUS_PUBLIC_KEY_FILES",
        ),
    ]:
        code, lines = servers.refuses_to_start(env)
        check(
            f"{case}: start-up stops with one line naming {name}",
            code not in (None, 0) and len(lines) == 1 and name in lines[0] and "BEGIN" not in lines[0],
            f"exit {code}, stderr {lines}",
        )

    # 2. Key A signs; PyJWT verifies with the published key alone.
    if not check("an EdDSA server starts with key A and no JWT_SECRET", servers.start(key_a), f"see {servers.log}"):
        return
    base = servers.base
    status, _, body = published(base)
    kid_a = thumbprint(b64url(keys.raw_public(public_a)))
    jwks_a = body.get("keys", []) if body else []
    check(
        "the JWK set is key A as RFC 8037 writes it, its kid the RFC 7638 thumbprint",
        status == 200
        and len(jwks_a) == 1
        and jwks_a[0]
        == {"kty": "OKP", "crv": "Ed25519", "x": b64url(keys.raw_public(public_a)), "kid": kid_a, "use": "sig", "alg": "EdDSA"},
        f"{status} {body}",
    )
    old_token = sign_in(base, "rotation@example.com")
    header = jwt.get_unverified_header(old_token)
    check("the token's header is alg EdDSA with key A's kid", header.get("alg") == "EdDSA" and header.get("kid") == kid_a, header)
    claims, why = pyjwt_verifies(base, old_token)
    check("PyJWKClient finds the key and PyJWT verifies the token", claims and claims.get("typ") == "access", why)
    check("the server accepts the token", whoami(base, old_token)[0] == 200, whoami(base, old_token))

    # 3. Rotation: key B signs, A's public key is still accepted.
    key_b, public_b = keys.new("b")
    kid_b = thumbprint(b64url(keys.raw_public(public_b)))
    if not check(
        "the server restarts with key B and A's public key as previous",
        servers.start(key_b, [public_a]),
        f"see {servers.log}",
    ):
        return
    base = servers.base
    status, headers, body = published(base)
    check(
        "the JWK set is B then A",
        status == 200 and [k.get("kid") for k in body.get("keys", [])] == [kid_b, kid_a],
        f"{status} {body}",
    )
    tag = headers.get("etag")
    status, _, _ = call("GET", f"{base}{JWKS_PATH}", headers={"If-None-Match": tag or '"none"'})
    check("the JWK set has an ETag, and If-None-Match with it is 304", tag and status == 304, f"{tag} {status}")
    claims, why = pyjwt_verifies(base, old_token)
    check("PyJWT still verifies the token signed with key A", claims is not None, why)
    check("the server still accepts the token signed with key A", whoami(base, old_token)[0] == 200, whoami(base, old_token))
    new_token = sign_in(base, "rotation@example.com")
    check("a new token carries key B's kid", jwt.get_unverified_header(new_token).get("kid") == kid_b, jwt.get_unverified_header(new_token))
    claims, why = pyjwt_verifies(base, new_token)
    check("PyJWT verifies the new token", claims is not None, why)
    check("the server accepts the new token", whoami(base, new_token)[0] == 200, whoami(base, new_token))

    payload = jwt.decode(new_token, options={"verify_signature": False})
    confused = jwt.encode(payload, keys.raw_public(public_b), algorithm="HS256", headers={"kid": kid_b})
    ok, detail = is_401_problem(base, confused)
    check("an HS256 token with key B's public key as its secret is a 401 problem", ok, detail)
    intruder = Ed25519PrivateKey.generate()
    forged = jwt.encode(payload, intruder, algorithm="EdDSA", headers={"kid": kid_b})
    ok, detail = is_401_problem(base, forged)
    check("a token signed by another key under key B's kid is a 401 problem", ok, detail)
    unknown = jwt.encode(payload, intruder, algorithm="EdDSA", headers={"kid": "not-a-key-of-ours"})
    ok, detail = is_401_problem(base, unknown)
    check("a token with an unknown kid is a 401 problem", ok, detail)

    # 4. A is dropped.
    if not check("the server restarts with key B alone", servers.start(key_b), f"see {servers.log}"):
        return
    base = servers.base
    status, _, body = published(base)
    check("the JWK set is B alone", status == 200 and [k.get("kid") for k in body.get("keys", [])] == [kid_b], body)
    ok, detail = is_401_problem(base, old_token)
    check("the token signed with key A is now a 401 problem", ok, detail)
    claims, why = pyjwt_verifies(base, old_token)
    check("PyJWKClient no longer finds key A", claims is None and "PyJWKClientError" in (why or ""), why)
    check("the token signed with key B still works", whoami(base, new_token)[0] == 200, whoami(base, new_token))


if __name__ == "__main__":
    sys.exit(main())
