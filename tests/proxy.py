"""A TCP proxy in front of a redis-server that can lose one reply: the command reaches the
server and runs, then the client's connection is cut before the answer comes back. redis-py then
reconnects and sends the same command again — exactly the replay luasched must make harmless."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from tests.servers import free_port


@dataclass
class _Link:
    client: socket.socket
    server: socket.socket
    drop_reply: bool = False
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@dataclass
class ReplyDropper:
    """Listens on 127.0.0.1:port and forwards to 127.0.0.1:target."""

    target: int
    port: int = field(default_factory=free_port)
    dropped: int = 0
    _marker: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _links: list[_Link] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def drop_reply_to(self, marker: bytes) -> None:
        """Lose the reply to the next request that contains ``marker`` (e.g. a script's SHA)."""
        with self._lock:
            self._marker = marker

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            link = _Link(client, socket.create_connection(("127.0.0.1", self.target)))
            self._links.append(link)
            threading.Thread(target=self._upstream, args=(link,), daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        while not link.closed:
            try:
                data = link.client.recv(65536)
            except OSError:
                return
            if not data:
                link.close()
                return
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    link.drop_reply = True
            try:
                link.server.sendall(data)
            except OSError:
                return

    def _downstream(self, link: _Link) -> None:
        while not link.closed:
            try:
                data = link.server.recv(65536)
            except OSError:
                return
            if not data:
                link.close()
                return
            if link.drop_reply:
                self.dropped += 1
                link.close()  # the server ran the command; its answer is lost
                return
            try:
                link.client.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._listener.close()
        for link in self._links:
            link.close()
