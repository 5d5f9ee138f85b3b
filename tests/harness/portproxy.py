"""A tiny TCP forwarder: makes loopback-only host services reachable from pod netns.

Pods reach the host through the bridge IP, but services such as the test
kube-apiserver bind 127.0.0.1 only; a forwarder on <bridge-ip>:<port> (or on
the "kubernetes" Service IP:443) relays to 127.0.0.1:<port>.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading

log = logging.getLogger(__name__)


class PortProxy:
    """Accept on (listen_host, listen_port) and relay each connection to target."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen = listen
        self.target = target
        self._sock = socket.create_server(listen, reuse_port=False)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"proxy-{listen}", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError as exc:
                log.warning("proxy %s -> %s: %s", self.listen, self.target, exc)
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns |= {client, upstream}
            done = threading.Semaphore(0)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b, done), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, done: threading.Semaphore) -> None:
        """Copy src to dst until EOF, half-close dst; the second pipe to end closes both."""
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)
        if done.acquire(blocking=False):
            with self._lock:
                self._conns -= {src, dst}
            src.close()
            dst.close()
        else:
            done.release()

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._stop.set()
        self._sock.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._thread.join(timeout=2)
