#!/usr/bin/env python3
"""Creates the accounts that sign in during the benchmark, through the server's own API (so that
their bcrypt hashes are the server's, at its cost), signs each in once, and writes:

  CREDS  "email<TAB>password" per line (for S5)
  TOKENS one access token per line (for every scenario that sends a token)

  accounts.py --base http://127.0.0.1:3180 --style newsapi|loopback --prefix signer --count 16 \
      --creds FILE --tokens FILE

Standard library only; sign-ups run 4 at a time (each one is a bcrypt hash).
"""
import argparse
import concurrent.futures
import json
import secrets
import urllib.request


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read() or b"null")


def one(args, i):
    email = f"{args.prefix}{i}@bench.example"
    password = f"bench-{secrets.token_hex(8)}-pass"
    body = {"email": email, "password": password}
    if args.style == "newsapi":
        body["name"] = f"Bench signer {i}"
    status, _ = post(args.base + "/signup", body)
    assert status in (200, 201), f"signup {email}: {status}"
    status, out = post(args.base + "/signin", {"email": email, "password": password})
    assert status == 200, f"signin {email}: {status}"
    token = out["access_token"] if args.style == "newsapi" else out["token"]
    return email, password, token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--style", choices=["newsapi", "loopback"], required=True)
    ap.add_argument("--prefix", default="signer")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--creds", required=True)
    ap.add_argument("--tokens", required=True)
    args = ap.parse_args()
    assert args.base.startswith("http://127.0.0.1:"), "loopback only"
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda i: one(args, i), range(1, args.count + 1)))
    with open(args.creds, "w") as f:
        f.writelines(f"{e}\t{p}\n" for e, p, _ in made)
    with open(args.tokens, "w") as f:
        f.writelines(f"{t}\n" for _, _, t in made)


if __name__ == "__main__":
    main()
