"""Start a real `vidlens serve` subprocess on a free loopback port and wait until it answers.

A port found free by binding port 0 can be taken by another process (a parallel test, an outgoing
connection) before the server binds it; the server then exits with "address already in use". That
race is retried on a fresh port instead of failing the caller.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

VIDLENS = Path(sys.executable).parent / "vidlens"
PORT_TAKEN = "address already in use"


def free_port() -> int:
    """A loopback port that was free a moment ago (see the module note on the race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: Sequence[str], log: Path, env: Mapping[str, str] | None = None, startup_s: float = 180,
                 attempts: int = 5) -> tuple[subprocess.Popen, str]:
    """Run `vidlens --quiet serve --port P ARGS` (output to `log`) until /healthz is 200; return (process, url).

    Raises RuntimeError with the server's log when it exits for another reason or is not up in `startup_s`.
    """
    for _ in range(attempts):
        port = free_port()
        with open(log, "w") as handle:
            process = subprocess.Popen([str(VIDLENS), "--quiet", "serve", "--port", str(port), *args],
                                       stdout=handle, stderr=subprocess.STDOUT, env=None if env is None else dict(env))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_s
        while process.poll() is None:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return process, url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"server not up in {startup_s} s:\n{log.read_text()}")
            time.sleep(0.25)
        text = log.read_text()
        if PORT_TAKEN not in text:
            raise RuntimeError(f"server exited with {process.returncode}:\n{text}")
    raise RuntimeError(f"no free port after {attempts} attempts:\n{log.read_text()}")
