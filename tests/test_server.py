"""The server sets TCP_NODELAY on every connection, whatever event loop runs it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from cartpredict.server import NoDelayHttpTools


class Transport(asyncio.Transport):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"socket": self._sock, "peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}
        return info.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_an_accepted_connection_gets_tcp_nodelay() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        config = Config(app=None, log_level="warning")
        config.load()
        loop = asyncio.new_event_loop()
        try:
            protocol = NoDelayHttpTools(config=config, server_state=ServerState(), app_state={},
                                        _loop=loop)  # fmt: skip
            protocol.connection_made(Transport(accepted))
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            protocol.connection_lost(None)
        finally:
            loop.close()
    finally:
        for s in (client, accepted, listener):
            s.close()
