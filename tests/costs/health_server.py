"""A real HTTP server on loopback that answers ``GET /health`` like the status daemon."""

from __future__ import annotations

import contextlib
import http.server
import threading


@contextlib.contextmanager
def health_server(status: int = 200, host: str = "127.0.0.1", port: int = 0):
    """Serve ``/health`` with ``status`` on ``host:port`` (default: a free loopback port); yield the port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            code = status if self.path == "/health" else 404
            body = b'{"status": "ok"}'
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
