"""An SMTP sink for the tests: aiosmtpd on a loopback port that writes each message it
receives to OUT_DIR as JSON (envelope, subject, text and HTML parts) with its images saved
beside it, and the message as received (NNNN.eml; written before the JSON). Prints the port on stdout once it accepts connections; runs until killed."""

import asyncio
import email
import email.policy
import json
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = f"{self.count:04d}"
        with open(os.path.join(self.out_dir, f"{name}.eml"), "wb") as f:
            f.write(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "text": None,
            "html": None,
            "images": [],
        }
        for part in message.walk():
            kind = part.get_content_type()
            if kind == "text/plain" and record["text"] is None:
                record["text"] = part.get_content()
            elif kind == "text/html" and record["html"] is None:
                record["html"] = part.get_content()
            elif kind.startswith("image/"):
                path = os.path.join(self.out_dir, f"{name}-{len(record['images'])}.png")
                with open(path, "wb") as f:
                    f.write(part.get_payload(decode=True))
                record["images"].append(
                    {"path": path, "content_id": str(part["content-id"] or ""), "type": kind}
                )
        tmp = os.path.join(self.out_dir, f"{name}.json.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, f"{name}.json"))
        return "250 Message accepted for delivery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    out_dir = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) > 2 else free_port()
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(port, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
