"""A minimal OAuth token endpoint for the benchmark, bound to 127.0.0.1 only.

Run as `python token_server.py`: it listens on BENCH_PORT (the benchmark uses 443, inside its
private network namespace), else on a free port, prints that port on stdout and serves until it
is terminated.

  POST /token   a refresh-token grant (form body). The right client_id, client_secret and
                refresh_token get {"access_token":"ya29.bench-N","expires_in":3599,
                "token_type":"Bearer"} (N counts the requests, so callers can tell whether they
                shared one token); anything else gets 400 invalid_grant. Every one is counted.
  GET  /stats   {"token_requests": N}: the count so far (not itself counted).

The expected credentials come from the environment: BENCH_CLIENT_ID, BENCH_CLIENT_SECRET,
BENCH_REFRESH_TOKEN. BENCH_EXPIRES_IN sets the tokens' lifetime (default 3599 seconds). With
BENCH_TLS_CERT and BENCH_TLS_KEY (PEM files) it serves HTTPS, as
Google's token endpoint does; otherwise plain HTTP.
"""

import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

EXPECTED = {
    "grant_type": "refresh_token",
    "client_id": os.environ["BENCH_CLIENT_ID"],
    "client_secret": os.environ["BENCH_CLIENT_SECRET"],
    "refresh_token": os.environ["BENCH_REFRESH_TOKEN"],
}

EXPIRES_IN = int(os.environ.get("BENCH_EXPIRES_IN") or 3599)

_lock = threading.Lock()
_count = 0


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, like a fresh CLI process makes anyway.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # keep stderr quiet
        pass

    def handle(self):
        try:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().handle()
        except (ssl.SSLError, ConnectionError, OSError):
            pass  # a client that gave up mid-handshake or mid-request

    def _reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            with _lock:
                self._reply(200, {"token_requests": _count})
        else:
            self._reply(404, {"error": "not_found"})

    def do_POST(self):
        global _count
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        if self.path != "/token":
            self._reply(404, {"error": "not_found"})
            return
        with _lock:
            _count += 1
            n = _count
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if any(form.get(k) != v for k, v in EXPECTED.items()):
            self._reply(400, {"error": "invalid_grant"})
            return
        self._reply(
            200,
            {"access_token": f"ya29.bench-{n}", "expires_in": EXPIRES_IN, "token_type": "Bearer"},
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 50 clients may connect at once


def main():
    server = Server(("127.0.0.1", int(os.environ.get("BENCH_PORT", "0"))), Handler)
    cert, key = os.environ.get("BENCH_TLS_CERT"), os.environ.get("BENCH_TLS_KEY")
    if cert and key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        # The handshake runs in each request's thread (Handler.handle), not in accept().
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
