"""Real servers for integration tests: a mosquitto broker on a free loopback port, and helpers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout} s")


@dataclass
class Mosquitto:
    """A mosquitto broker run by the test; ``stop``/``start`` keep the port (for reconnect tests)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    nodelay: bool = False
    """Turn on mosquitto's set_tcp_nodelay (off by default), for latency benchmarks."""
    tls: bool = False
    """Serve TLS only, with a certificate for 127.0.0.1 signed by ``ca_file``."""
    persistence: bool = False
    """Keep sessions, subscriptions and queued messages in ``workdir`` across restarts, saved after every
    change so that even a SIGKILL loses nothing (as the Home Assistant Mosquitto add-on keeps them)."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def _config(self) -> Path:
        lines = [f"listener {self.port} {HOST}", f"log_dest file {self.workdir / 'mosquitto.log'}"]
        if self.persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_on_changes true",
                      "autosave_interval 1"]  # fmt: skip
        else:
            lines.append("persistence false")
        if self.nodelay:
            lines.append("set_tcp_nodelay true")
        if os.geteuid() == 0:
            # As root mosquitto drops to the "mosquitto" user, who cannot read pytest's private tmp dirs.
            lines.append("user root")
        if self.users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            make_certificates(self.workdir)
            lines += [f"{key} {self.workdir / name}" for key, name in _TLS_FILES.items()]
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self._config())], stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            _, stderr = self.process.communicate(timeout=5) if self.process.poll() is not None else (b"", b"")
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {stderr.decode(errors='replace')}") from None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.process = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, nothing saved beyond what persistence already wrote."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None


_TLS_FILES = {"cafile": "ca.pem", "certfile": "server.pem", "keyfile": "server.key"}


def make_certificates(workdir: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, made with the openssl CLI."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

    (workdir / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Xiangyin test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.cnf")  # fmt: skip


@contextmanager
def mosquitto(
    workdir: Path,
    users: dict[str, str] | None = None,
    tls: bool = False,
    nodelay: bool = False,
    persistence: bool = False,
) -> Iterator[Mosquitto]:
    """Run a broker for the duration of the block."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        raise RuntimeError("mosquitto is not installed: apt-get install mosquitto")
    broker = Mosquitto(workdir, users=users or {}, tls=tls, nodelay=nodelay, persistence=persistence)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class TcpProxy:
    """Forwards a free loopback port to ``target_port``, to cut one client off while the server stays up.

    ``hold_upstream`` stops bytes from the client reaching the server (they wait here, and a cut drops
    them): the client's acknowledgements are lost as on a network that fails mid-exchange.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.hold_upstream = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        for task in (self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer, upstream=False)):
            running = asyncio.create_task(task)
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool) -> None:
        held = b""
        try:
            while data := await reader.read(65536):
                if upstream and self.hold_upstream:
                    held += data
                    continue
                writer.write(held + data)
                held = b""
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        """Drop every connection (held bytes are lost) and refuse new ones until :meth:`restore`."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        """Accept connections again, on the same port."""
        self.hold_upstream = False
        if self._server is None:
            await self.start()

    async def aclose(self) -> None:
        self.cut()
        for task in list(self._tasks):
            task.cancel()


async def eventually(check: object, timeout: float = 10.0, interval: float = 0.05) -> None:  # noqa: ASYNC109
    """Wait until ``check()`` is truthy (it may be a coroutine function); fail with its last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check() if callable(check) else check
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s (last value: {last!r})")
