"""Run the command line in child processes forked from one that has imported the connector.

A ``python -m connector`` process spends most of a short command importing (SQLAlchemy,
pydantic, the phone library: about 0.6 CPU-seconds), and the suite runs the command line about
a thousand times. Like multiprocessing's ``forkserver``, a server process here (``zygote``) imports
the connector once, single-threaded; for each command it forks a child that takes the caller's
arguments, environment, working folder and standard streams (passed over a Unix socket with
SCM_RIGHTS) and runs ``connector.cli.main`` as the ``kore-connector`` script would, then exits
with its code. The child is a real process of its own: its own pid, files, signals and exit code.

What a fork cannot give is what the interpreter reads at start: the environment variables that
change the interpreter (``PYTHON*``, the locale) and those a module reads when imported
(``CONNECTOR_TEST_CRASH``). A command with any of them runs as a fresh process (``FRESH``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

FRESH = ("PYTHON", "LANG", "LC_", "CONNECTOR_TEST_CRASH")
"""Environment variables (prefixes) read when the interpreter or a module starts."""

_PRELOAD = (
    "connector.cli.main",
    "connector.checks",
    "connector.delivery",
    "connector.starter",
    "connector.sync.run",
    "connector.sync.reconcile",
    "connector.sources.files",
    "connector.sources.sql",
    "connector.sources.xlsx_files",
    "connector.kore.client",
    "connector.kore.sandbox",
    "connector.state",
)


def needs_fresh_process(changed: Mapping[str, str]) -> bool:
    """Whether a command whose environment differs from the suite's in ``changed`` must start
    a new interpreter."""
    return any(name.startswith(FRESH) for name in changed)


class ForkServer:
    """One per test process, started at its first command and ended with it."""

    def __init__(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="zygote-")
        self.path = os.path.join(self._folder, "socket")
        log = open(os.path.join(self._folder, "zygote.log"), "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        log.close()
        assert self._process.stdout is not None
        ready = self._process.stdout.readline()
        assert ready == b"ready\n", f"the fork server did not start: {self._log()}"
        atexit.register(self.close)

    def _log(self) -> str:
        return Path(self._folder, "zygote.log").read_text(errors="replace")

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def run(
        self, args: Sequence[str], *, env: Mapping[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """``subprocess.run([kore-connector, *args], capture_output=True, text=True, ...)``."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        request = {"argv": list(args), "env": dict(env), "cwd": os.getcwd()}
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as channel:
            channel.connect(self.path)
            socket.send_fds(channel, [json.dumps(request).encode()], [null, out_w, err_w])
            for fd in (null, out_w, err_w):
                os.close(fd)
            pid = json.loads(channel.recv(4096))["pid"]
            try:
                out, err = _read_both(out_r, err_r, deadline=time.monotonic() + timeout)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["kore-connector", *args], timeout) from None
            answer = channel.recv(4096)
        assert answer, f"the fork server went away: {self._log()}"
        code = json.loads(answer)["status"]
        return subprocess.CompletedProcess(["kore-connector", *args], code, _text(out), _text(err))


def _read_both(out: int, err: int, *, deadline: float) -> tuple[bytes, bytes]:
    """Everything written to both pipes until each is closed by every writer."""
    chunks: dict[int, list[bytes]] = {out: [], err: []}
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("kore-connector", 0)
            for key, _ in selector.select(left):
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
                    os.close(key.fd)
    return b"".join(chunks[out]), b"".join(chunks[err])


def _text(data: bytes) -> str:
    """As ``text=True`` decodes: the locale's encoding, universal newlines."""
    return data.decode("utf-8", errors="strict").replace("\r\n", "\n").replace("\r", "\n")


def _serve(path: str) -> None:
    """The server: import, listen, and fork a handler for each connection."""
    import importlib

    for name in _PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(2)
    parent = os.getppid()
    signal.signal(signal.SIGTERM, _stop)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        _accept(listener, parent)
    except SystemExit:
        with contextlib.suppress(ChildProcessError):
            while True:
                os.wait()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _accept(listener: socket.socket, parent: int) -> None:
    while os.getppid() == parent:
        _reap()
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _handle(connection)
        connection.close()


def _reap() -> None:
    """Wait for the handlers that ended, so that their CPU time (and their commands') counts
    in this process's children's, and so in the suite's."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _handle(connection: socket.socket) -> None:
    """Fork the command, tell the caller its pid, wait for it, tell its exit code."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        connection.close()
        _command(request, fds)
    for fd in fds:
        os.close(fd)
    connection.send(json.dumps({"pid": pid}).encode())
    _, status = os.waitpid(pid, 0)
    connection.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
    os._exit(0)


def _command(request: dict[str, object], fds: list[int]) -> None:
    """In the child: take the caller's streams, folder and environment, and run the command."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    tempfile.tempdir = None
    argv = request["argv"]
    assert isinstance(argv, list)
    sys.argv = ["kore-connector", *argv]
    try:
        from connector.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()  # as the interpreter prints an uncaught exception
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1])
