"""A stand-in upstream on a raw loopback socket, for tests that put a real nginx front door in front
of something whose answers they control (silent, dropped, slow, held): each connection is handed
to the subclass's `_answer` in a thread of its own."""
from __future__ import annotations

import socket
import threading


class RawUpstream:
    def __init__(self, backlog: int = 16) -> None:
        """Subclasses set their own state first, then call this: it starts accepting at once."""
        self.server = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        raise NotImplementedError
