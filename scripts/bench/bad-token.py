#!/usr/bin/env python3
"""Prints a well-formed HS256 JWT with plausible claims, signed with a random key the server does
not know: S6 sends it, so that every request goes through the full signature check and is
refused (401). Standard library only."""
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time
import uuid


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


now = int(time.time())
issuer = sys.argv[1] if len(sys.argv) > 1 else "newsapi"
header = {"alg": "HS256", "typ": "JWT"}
claims = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "iat": now, "nbf": now,
          "exp": now + 86400, "iss": issuer, "aud": issuer, "typ": "access",
          "id": 1, "email": "nobody@bench.example", "name": "nobody"}
signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
signature = hmac.new(secrets.token_bytes(32), signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b64(signature))
