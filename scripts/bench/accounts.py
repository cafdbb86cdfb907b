#!/usr/bin/env python3
"""Creates the accounts that sign in during the benchmark, through the server's own API (so that
their bcrypt hashes are the server's, at its cost), signs each in once, and writes:

  CREDS  "email<TAB>password" per line (for S5)
  TOKENS one access token per line (for every scenario that sends a token); for the PocketBase
         anchor "user id<TAB>token", the format of its bench.lua (its create rule wants the
         caller's id as the author)

  accounts.py --base http://127.0.0.1:3180 --style newsapi|loopback|pocketbase --prefix signer \
      --count 16 --creds FILE --tokens FILE

PocketBase requests carry the User-Agent of its anchor's bench (pb-anchor-bench): it records an
"auth origin" per IP and User-Agent and tries to send an e-mail for a new one.

Standard library only; sign-ups run 4 at a time (each one is a bcrypt hash).
"""
import argparse
import concurrent.futures
import json
import secrets
import urllib.request


PB_USERS = "/api/collections/users"


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "User-Agent": "pb-anchor-bench"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read() or b"null")


def one(args, i):
    email = f"{args.prefix}{i}@bench.example"
    password = f"bench-{secrets.token_hex(8)}-pass"
    body = {"email": email, "password": password}
    if args.style == "newsapi":
        body["name"] = f"Bench signer {i}"
    if args.style == "pocketbase":
        status, _ = post(args.base + PB_USERS + "/records", dict(body, passwordConfirm=password))
        assert status == 200, f"signup {email}: {status}"
        status, out = post(args.base + PB_USERS + "/auth-with-password",
                           {"identity": email, "password": password})
        assert status == 200, f"signin {email}: {status}"
        return email, password, f"{out['record']['id']}\t{out['token']}"
    status, _ = post(args.base + "/signup", body)
    assert status in (200, 201), f"signup {email}: {status}"
    status, out = post(args.base + "/signin", {"email": email, "password": password})
    assert status == 200, f"signin {email}: {status}"
    token = out["access_token"] if args.style == "newsapi" else out["token"]
    return email, password, token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--style", choices=["newsapi", "loopback", "pocketbase"], required=True)
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
