"""Ports the stack listens on: checked before anything starts, so a taken one is one clear line."""

from __future__ import annotations

import errno
import socket
import textwrap

import psutil

from infra.exits import StartFailure


class PortInUseError(StartFailure):
    """A port the stack needs is taken by another process."""


def ensure_free(host: str, port: int, what: str) -> None:
    """Raise `PortInUseError` naming `what` if `port` cannot be bound."""
    listening_socket(host, port, what).close()


def listening_socket(host: str, port: int, what: str, backlog: int = 2048) -> socket.socket:
    """A socket listening on `host:port` (port 0: any free port), for a server to serve on.

    Binding before the server starts turns a taken port into one sentence instead of a line
    from deep inside the server's startup.

    Raises:
        PortInUseError: The port is taken, naming `what` it was for.
        StartFailure: The address cannot be bound for another reason.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only
    # when it sees a TCP socket, and without it every keep-alive request waits 40 ms for the
    # client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # As servers bind: the TIME_WAIT remnants of a stopped server's connections do not block a
    # restart on its port, while a live listener still does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            holder = listener_of(port)
            raise PortInUseError(
                f"port {port} ({what}) is in use{f' by {holder}' if holder else ''}: "
                "stop it or choose another port"
            ) from None
        raise StartFailure(f"cannot listen on {host}:{port} ({what}): {err.strerror}") from None
    return sock


def listener_of(port: int) -> str | None:
    """`pid N (command line)` of the process listening on `port`, if this user may see it."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            listening = conn.status == psutil.CONN_LISTEN
            if listening and conn.pid and getattr(conn.laddr, "port", None) == port:
                command = " ".join(psutil.Process(conn.pid).cmdline())
                return f"pid {conn.pid} ({textwrap.shorten(command, 60, placeholder=' …')})"
    except psutil.Error:  # gone meanwhile, or not ours to see
        return None
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
