"""The open exec stream to one runner: blocking sends and deadline-bound reads, from worker threads.

Blocking on purpose: the hijacked connection the Docker SDK hands back is a Unix socket, a TCP or
TLS socket, an SSH channel or a named pipe depending on ``DOCKER_HOST``; all of them offer
``sendall``, ``recv`` and ``settimeout``, and none of them needs more than that here. One thread
reads a report while another may send a cancel, so sends share a lock.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from typing import Any

from agentflow_tools.sandbox.protocol import FrameReader


class StreamClosed(Exception):
    """The runner's end of the stream is gone (it exited, or its container was removed)."""


class RunnerStream:
    def __init__(self, raw: Any) -> None:
        self._raw = raw  # the SDK's object; it holds the HTTP response that owns the connection
        self._sock = getattr(raw, "_sock", raw)  # a SocketIO wraps the socket itself
        self._frames = FrameReader()
        self._send_lock = threading.Lock()

    @property
    def stderr(self) -> bytes:
        """The end of what the runner wrote to stderr: its traceback, if it crashed."""
        return bytes(self._frames.stderr)

    def send(self, data: bytes, deadline: float | None = None) -> None:
        """Write ``data``; with a ``deadline``, the socket's timeout is set for it (and stays for the
        reads that follow), so only the thread that runs a request passes one. A cancel, sent from
        another thread while that one reads, leaves the timeout alone."""
        try:
            with self._send_lock:
                if deadline is not None:
                    self._sock.settimeout(max(deadline - time.monotonic(), 0.001))
                self._sock.sendall(data)
        except OSError as exc:
            raise StreamClosed(str(exc) or type(exc).__name__) from None

    def read_line(self, limit: int, deadline: float) -> bytes:
        """The next line of the runner's stdout; ``TimeoutError`` past ``deadline`` (``time.monotonic``)."""
        while (line := self._frames.take_line(limit)) is None:
            self._fill(deadline)
        return line

    def read_exact(self, size: int, deadline: float) -> bytes:
        while (data := self._frames.take(size)) is None:
            self._fill(deadline)
        return data

    def idle_and_open(self) -> bool:
        """Between runs nothing may arrive: a readable socket means the runner ended or spoke out of turn."""
        if self._frames.stdout:
            return False
        if not isinstance(self._sock, socket.socket) or isinstance(self._sock, ssl.SSLSocket):
            return True  # no peeking here; a dead runner shows at the next send or read
        try:
            self._sock.settimeout(0.0)
            return not self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False

    def shutdown(self) -> None:
        """End the stream both ways: a thread blocked reading wakes up with ``StreamClosed``.

        The file descriptor stays open until ``close``: closed under a reader, its number could be
        reused by another connection, which the reader would then wait on.
        """
        with contextlib.suppress(OSError, AttributeError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Only once no thread uses the stream any more."""
        self.shutdown()
        for thing in (self._sock, self._raw):
            with contextlib.suppress(Exception):  # already closed, or its connection is gone
                thing.close()

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the sandbox runner did not answer in time")
        try:
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise
        except OSError as exc:
            raise StreamClosed(str(exc) or type(exc).__name__) from None
        if not chunk:
            raise StreamClosed("end of stream")
        self._frames.feed(chunk)
