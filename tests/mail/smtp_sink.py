"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1:PORT, keeping every mail it accepts.

    smtp_sink.py DIR [PORT]

Each mail accepted is written to DIR as one JSON file (written to a temporary name, then renamed,
so a reader never sees half a file), named in order of arrival:

    {"mail_from": ..., "rcpt_tos": [...], "from": ..., "to": ..., "subject": ..., "body": ...,
     "raw": ...}

`body` is the decoded text of the plain-text part. A recipient whose address starts with `reject`
is refused with `550` (a permanent failure) at `RCPT TO`; a mail to one starting with `slow` is
accepted only after two seconds. Prints `listening on PORT` once it accepts
connections (PORT 0 or absent picks a free one); stops on SIGTERM or SIGINT.
"""

import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, directory):
        self.directory = directory
        self.count = len([n for n in os.listdir(directory) if n.endswith(".json")])
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # A permanent refusal, for the tests of mail that can never be delivered.
        if address.lower().startswith("reject"):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        # A slow server, for the tests where two senders must be busy at once.
        if any(r.lower().startswith("slow") for r in envelope.rcpt_tos):
            await asyncio.sleep(2)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message.get("From", "")),
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "body": part.get_content() if part is not None else "",
            "raw": envelope.original_content.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            name = f"{self.count:06d}.json"
        tmp = os.path.join(self.directory, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    directory = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    os.makedirs(directory, exist_ok=True)
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    controller = Controller(Keep(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening on {port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
