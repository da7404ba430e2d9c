"""A TCP proxy that delays every read by a fixed time, in a process of its own:
`python -m benchmarks.proxy --target HOST:PORT --delay SECONDS`.

What `tc qdisc ... netem delay` would do where the kernel has it (this machine's has
no `netem`): each chunk read from one side is written to the other `delay` seconds
after it was read, 0.5 ms each way giving 1 ms of round-trip time; chunks keep their
order and several may be in flight at once (a pipelined batch is not serialized
behind the delay). Threads, not asyncio: the event loop's timers round a 0.5 ms sleep
up to 1 ms (epoll's resolution), a thread's `time.sleep` does not.

It prints the port it listens on, then answers each line on stdin with one JSON line:
`{"connections": n, "up": reads client->server, "down": reads server->client}`
counted since the start. `up` reads are the round trips the clients began (a
request split over several reads counts more than once, requests sent together once).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import socket
import sys
import threading
import time
from typing import Any

COUNTS = {"connections": 0, "up": 0, "down": 0}
LOCK = threading.Lock()


def pump(src: socket.socket, dst: socket.socket, delay: float, key: str) -> None:
    """Read from `src`, write each chunk to `dst` `delay` seconds after it was read."""
    pending: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def writer() -> None:
        while True:
            due, data = pending.get()
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (dst, src):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=writer, daemon=True).start()
    while True:
        try:
            data = src.recv(1 << 16)
        except OSError:
            data = b""
        if data:
            with LOCK:
                COUNTS[key] += 1
        pending.put((time.perf_counter() + delay, data))
        if not data:
            return


def serve(listener: socket.socket, target: tuple[str, int], delay: float) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(target)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with LOCK:
            COUNTS["connections"] += 1
        threading.Thread(target=pump, args=(client, upstream, delay, "up"), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client, delay, "down"), daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:5432")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--delay", type=float, default=0.0005, help="seconds, each way")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    lhost, lport = args.listen.rsplit(":", 1)
    listener = socket.create_server((lhost, int(lport)), backlog=256)
    print(listener.getsockname()[1], flush=True)
    threading.Thread(
        target=serve, args=(listener, (host, int(port)), args.delay), daemon=True
    ).start()
    for _ in sys.stdin:
        with LOCK:
            print(json.dumps(COUNTS), flush=True)


class Proxy:
    """The proxy as a child process (for the benchmark): `port`, `counts()`."""

    def __init__(self, target: str, delay: float) -> None:
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.proxy", "--target", target, "--delay", str(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent),
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def counts(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


if __name__ == "__main__":
    main()
