"""A forward HTTP proxy on 127.0.0.1 for tests: what HTTP_PROXY points a client at.

It answers absolute-URI requests (`GET http://host:port/path`) by making the same GET itself and
relaying the answer as it is (status, headers, body; redirects are not followed). It records the
URL of every request it was asked to make, so a test can tell whether the proxy went somewhere.
`names` is the proxy's own DNS: host names only its network knows (an intranet's)::

    with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        ...
        assert proxy.requested == ["http://127.0.0.2:8000/feed.xml"]
"""

from __future__ import annotations

import http.client
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.fakes.threaded_server import ThreadedServer

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "proxy-authorization", "proxy-authenticate"}  # fmt: skip


class ForwardProxy(ThreadedServer):
    def __init__(self, host: str = "127.0.0.1", names: dict[str, str] | None = None) -> None:
        self.requested: list[str] = []
        self.names = dict(names or {})
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.requested.append(self.path)
                target = urlsplit(self.path)
                if target.scheme != "http" or not target.hostname:
                    self.send_error(400, "absolute http URI expected")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                path = target.path or "/"
                if target.query:
                    path += "?" + target.query
                try:
                    address = proxy.names.get(target.hostname, target.hostname)
                    conn = http.client.HTTPConnection(address, target.port or 80, timeout=5)
                    conn.request("GET", path, headers=headers)
                    answer = conn.getresponse()
                    body = answer.read()
                    conn.close()
                except OSError as exc:
                    self.send_error(502, f"cannot reach {target.hostname}: {exc}")
                    return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, host)
