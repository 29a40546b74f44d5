"""The local HTTP server plugin apps run on (``babyvlm serve``, ``babyvlm study serve``): the socket is
bound here, before the app loads anything, so a bad ``--host`` or a busy port is one line naming the
host and port (werkzeug would print a bare reason such as "Name or service not known" and exit)."""

from __future__ import annotations

import socket
from typing import Any

from babyvlm.core.errors import ConfigError


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one); errors name both."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"--host {host!r}: not an address or host name this machine can listen on "
                          f"({reason})") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


def listening_server(app: Any, host: str, listener: socket.socket) -> Any:
    """A threaded werkzeug server for ``app`` on ``listener`` (which it takes over: a duplicate of the
    descriptor; ours is closed)."""
    from werkzeug.serving import make_server

    port = listener.getsockname()[1]
    try:
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
    finally:
        listener.close()
    server.server_name, server.server_port = host, port  # what binding would have set (http.server's names)
    return server
