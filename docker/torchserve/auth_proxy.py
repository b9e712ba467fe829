"""The token check in front of TorchServe when it runs on Kubernetes (lesson 12).

TorchServe 0.12 makes new random tokens every time it starts and cannot be given one. Behind a
Service, with replicas that come and go, no client could know them. So in the pod TorchServe runs
with its own tokens off, listening on the pod's loopback only, and this proxy, in a second
container of the same pod, is the only way in: it forwards a request only when it carries
`Authorization: Bearer <token>`, the token coming from a Kubernetes Secret. `GET /ping` passes
without one, so that the kubelet's probes need no secret.

Standard library only; it runs with the image's Python. Settings, from the environment:
  AUTH_TOKEN      the token (required)
  LISTEN_ADDRESS  where to listen: 0.0.0.0 in a cluster (the pod's own address), 127.0.0.1 on a host network
  ROUTES          LISTEN_PORT=UPSTREAM_HOST:PORT pairs, comma-separated, e.g. 8080=127.0.0.1:8085,8081=127.0.0.1:8086
"""
import hmac
import http.client
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# headers that belong to one connection, not to the request (RFC 9110, 7.6.1), and the token itself
_DROP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
         "transfer-encoding", "upgrade", "host", "authorization", "content-length"}


def make_handler(token: str, upstream: tuple):
    "A request handler that checks the token and forwards to `upstream` (host, port)."
    expected = f"Bearer {token}".encode()

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as TorchServe's clients expect

        def answer(self, status: int, body: bytes, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            probe = self.command == "GET" and self.path.split("?")[0] == "/ping"
            given = self.headers.get("Authorization", "").encode()
            if not probe and not hmac.compare_digest(given, expected):  # constant time: no timing hints
                return self.answer(401, b'{"code": 401, "message": "missing or wrong token"}\n',
                                   [("Content-Type", "application/json")])
            if "chunked" in self.headers.get("Transfer-Encoding", ""):
                return self.answer(411, b'{"code": 411, "message": "send a Content-Length"}\n')
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROP}
            conn = http.client.HTTPConnection(*upstream, timeout=120)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
            except OSError as e:  # TorchServe is not listening (yet): come back later
                return self.answer(503, f'{{"code": 503, "message": "TorchServe is not answering: {e}"}}\n'.encode())
            finally:
                conn.close()
            self.answer(r.status, data, [(k, v) for k, v in r.getheaders() if k.lower() not in _DROP])

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = forward

        def log_message(self, fmt, *args):  # one line per request on stderr, without the token
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    return Proxy


def main() -> int:
    token = os.environ.get("AUTH_TOKEN", "")
    if len(token) < 16:
        print("auth_proxy: AUTH_TOKEN must hold a token of at least 16 characters", file=sys.stderr)
        return 2
    address = os.environ.get("LISTEN_ADDRESS", "0.0.0.0")
    servers = []
    for route in os.environ.get("ROUTES", "8080=127.0.0.1:8085,8081=127.0.0.1:8086").split(","):
        port, target = route.split("=")
        host, upstream_port = target.rsplit(":", 1)
        servers.append(ThreadingHTTPServer((address, int(port)), make_handler(token, (host, int(upstream_port)))))
        print(f"auth_proxy: {address}:{port} -> {target}", file=sys.stderr, flush=True)
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
