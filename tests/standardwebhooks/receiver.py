"""A webhook endpoint for tests/it/endpoints.rs that checks belfry's requests with the official
`standardwebhooks` package.

Listens on 127.0.0.1 on a free port and prints `READY <port>` on stdout. The endpoint's
secret is read from SECRET_FILE at each request (the test learns it only after registering
the endpoint, which needs this server's URL). Each POST is verified (signature and timestamp
tolerance) and reported as one JSON line on stdout: {"ok": true, "id", "type", "payload"} and
a 204, or {"ok": false, "error"} and a 400. Exits when stdin closes.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

SECRET_FILE = sys.argv[1]
LOCK = threading.Lock()


def report(line):
    with LOCK:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        try:
            with open(SECRET_FILE) as f:
                secret = f.read().strip()
            payload = Webhook(secret).verify(body, headers)
            report({"ok": True, "id": headers.get("webhook-id") or headers.get("Webhook-Id"),
                    "type": payload["type"], "payload": payload})
            self.send_response(204)
        except Exception as e:  # the test reads the reason
            report({"ok": False, "error": f"{type(e).__name__}: {e}"})
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()


if __name__ == "__main__":
    main()
