#!/usr/bin/env python3
"""Arrival-timestamping webhook receiver for contrib/bench/delivery (not a test).

    contrib/bench/receiver.py OUT_FILE [PORT]

Listens on 127.0.0.1:PORT (default 0: the kernel picks one) and prints the
port on stdout, alone on one line, once it accepts connections. Answers every
POST with 200 and the body {} (keep-alive, Nagle off), and appends one line
per request to OUT_FILE:

    <CloudEvents "id"> <wall-clock arrival, epoch seconds with microseconds>

The arrival time is taken when the whole request (headers and body) has been
read. A body that is not JSON or has no "id" is recorded with the id "-".
Python standard library only. Stops on SIGTERM or SIGINT.
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # A client closing its keep-alive connection is no error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes
    out = None
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        arrived = time.time()
        try:
            event_id = json.loads(body).get("id")
        except (ValueError, AttributeError):
            event_id = None
        if event_id is None or " " in str(event_id) or "\n" in str(event_id):
            event_id = "-"
        line = "%s %.6f\n" % (event_id, arrived)
        with self.lock:
            self.out.write(line)
            self.out.flush()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format, *args):  # noqa: A002 (signature of the base)
        pass


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: %s OUT_FILE [PORT]\n" % sys.argv[0])
        return 2
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    Handler.out = open(sys.argv[1], "a", encoding="utf-8")
    server = Server(("127.0.0.1", port), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever(), which runs in this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    Handler.out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
