"""Running the app under uvicorn with a graceful drain on SIGTERM (and Ctrl-C).

The first signal starts the drain: new generation requests and /health get 503 (so a load
balancer stops sending traffic) while running requests finish streaming; once none is left,
uvicorn shuts down and the process exits 0. A second signal exits at once, as uvicorn's own
second Ctrl-C does.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

import uvicorn
from fastapi import FastAPI

from llmlab.errors import OutputError

log = logging.getLogger("llmlab.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, app: FastAPI, config: uvicorn.Config, on_ready: Callable[[], None] | None = None):
        super().__init__(config)
        self.app_server = app.state.server
        self.on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            self.on_ready()

    def handle_exit(self, sig, frame) -> None:
        if self.app_server.draining:  # asked twice: stop now
            self.should_exit = self.force_exit = True
            return
        log.warning("draining: finishing %d running requests, refusing new ones (signal again to stop now)",
                    self.app_server.active)
        self.app_server.begin_drain()

    async def on_tick(self, counter: int) -> bool:
        # uvicorn's main loop calls this every 0.1 s; exiting once drained is uvicorn's normal shutdown.
        if self.app_server.draining and self.app_server.idle:
            self.should_exit = True
        return await super().on_tick(counter)


def run(app: FastAPI, host: str, port: int, log_level: str = "info",
        on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until drained. The socket is bound here, so port 0 (any free port) works and
    `on_ready(url)` gets the real address once requests are accepted."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OutputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()
    url = f"http://{f'[{bound[0]}]' if family == socket.AF_INET6 else bound[0]}:{bound[1]}"
    config = uvicorn.Config(app, log_level=log_level, timeout_keep_alive=5)
    server = DrainingServer(app, config, (lambda: on_ready(url)) if on_ready else None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def spawn(model_dir, *args: str, timeout: float = 120):
    """Start `llmlab serve --model MODEL_DIR --port 0 ARGS...` as a child process (for benchmarks
    and tests); returns (process, base URL) once it accepts requests. Its stderr is read on a
    thread into `process.log_lines`."""
    import os
    import re
    import subprocess
    import sys
    import threading
    from pathlib import Path

    llmlab = Path(sys.executable).with_name("llmlab")
    cmd = [str(llmlab)] if llmlab.exists() else [sys.executable, "-m", "llmlab.cli.main"]
    proc = subprocess.Popen([*cmd, "serve", "--model", str(model_dir), "--port", "0", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.log_lines = []
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            proc.log_lines.append(line)
            m = re.search(r"llmlab serve: running on (http://\S+)", line)
            if m:
                found.append(m.group(1))
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        proc.kill()
        proc.wait()
        raise RuntimeError("llmlab serve did not start:\n" + "".join(proc.log_lines[-20:]))
    return proc, found[0]

