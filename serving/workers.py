"""`zoo-model-server --worker_processes=N`: N server processes behind the same ports.

One Python process serves every request through one event loop (or one pool of
threads) under one interpreter lock, so on a machine with more cores than that
loop can keep busy, a single zoo-model-server leaves cores idle where
tensorflow_model_server (threads, no such lock) would use them. With
`--worker_processes=N` the console script becomes a small supervisor that does not
load TensorFlow: it starts N whole servers, each `python -m serving.server_main`
with the same flags, and each binds the gRPC and REST ports with SO_REUSEPORT, so
the kernel spreads incoming *connections* over them (a client keeps its worker for
as long as it keeps its connection: one gRPC channel is one worker, so N busy
clients, not one, use N workers).

What changes with more than one worker, and why:

- Every worker loads every model: N times the memory.
- Each worker batches its own requests (with --enable_batching).
- A worker answers status, metadata and metrics for itself. The workers read the
  same files, so they serve the same versions once each has polled.
- HandleReloadConfigRequest is refused (FAILED_PRECONDITION): it would reach one
  worker and change only that one. Change the --model_config_file instead, with
  --model_config_file_poll_wait_seconds set: every worker reads it.
- Only worker 0 listens on --grpc_socket_path (a Unix socket cannot be shared).

The supervisor reserves the ports first (a bound, not listening, SO_REUSEPORT
socket), so `--port=0` still picks one free port for all of them. It reports
success once every worker has loaded its models and opened its ports; if one
fails to start, it stops the others and exits as that worker did ("Failed to
start server. Error: ..." is on stderr, from the worker). A worker that exits
later is started again. SIGTERM or SIGINT reaches every worker, which drains its
requests in flight; the supervisor exits 0 when they have. Workers get SIGTERM
if the supervisor itself dies.
"""

import ctypes
import dataclasses
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time

log = logging.getLogger(__name__)

# How a worker knows it is one: "INDEX/COUNT/READY_FD" (the supervisor sets it).
WORKER_ENV = "ZOO_SERVER_WORKER"
_PR_SET_PDEATHSIG = 1
# A worker that keeps dying waits longer and longer before it is started again.
_RESTART_DELAYS_S = (1, 2, 5, 10, 30, 60)
# A worker that ran this long before exiting had been serving: its restarts start over.
_HEALTHY_S = 60


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """This process is worker `index` of `count`; it writes to `ready_fd` once serving
    (-1: a restarted worker, which nobody waits for)."""

    index: int
    count: int
    ready_fd: int

    @classmethod
    def from_environment(cls):
        """The role the supervisor gave this process, or None when it is not a worker.

        Raises:
            ValueError: the variable is set to something the supervisor does not write.
        """
        text = os.environ.get(WORKER_ENV)
        if not text:
            return None
        try:
            index, count, ready_fd = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"{WORKER_ENV}={text!r} is not INDEX/COUNT/READY_FD: the zoo-model-server "
                             f"supervisor sets it for its workers; unset it to run a server.") from None
        return cls(index, count, ready_fd)

    def announce_ready(self):
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, b"%d\n" % self.index)
        except OSError:  # the supervisor stopped waiting (another worker failed to start)
            pass
        finally:
            os.close(self.ready_fd)

    @property
    def reload_refusal(self):
        """Why HandleReloadConfigRequest is refused in a worker."""
        return (
            f"HandleReloadConfigRequest would change only the worker process that receives it, one "
            f"of {self.count} (--worker_processes={self.count}). Change the models in "
            "--model_config_file and set --model_config_file_poll_wait_seconds (every worker reads "
            "it), or serve with --worker_processes=1."
        )


class _BindError(Exception):
    pass


def _reserve(what, host, port):
    """A bound, not listening, SO_REUSEPORT socket on host:port: the port the workers share."""
    # The address family as serving.rest binds it ("localhost": 127.0.0.1).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as e:  # OverflowError: a port past 65535
        sock.close()
        raise _BindError(f"Failed to bind {what} to {host}:{port} ({e.strerror or e})") from e
    return sock


def _die_with_parent():
    # Runs in the child between fork and exec (the supervisor has no other threads).
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Starts, watches and stops the worker processes of one zoo-model-server."""

    def __init__(self, argv, options, count):
        self.argv = list(argv)
        self.options = options
        self.count = count
        self.workers = [None] * count
        self._started_at = [0.0] * count
        self._restarts = [0] * count
        self._stopping = False

    def _spawn(self, index, ready_fd=-1):
        env = dict(os.environ, **{WORKER_ENV: f"{index}/{self.count}/{ready_fd}"})
        argv = [sys.executable, "-m", "serving.server_main", *self.argv]
        self.workers[index] = subprocess.Popen(argv, env=env, pass_fds=(ready_fd,) if ready_fd >= 0 else (),
                                               preexec_fn=_die_with_parent)
        self._started_at[index] = time.monotonic()

    def _start_all(self):
        """Start every worker and wait until each serves; the exit status if one cannot."""
        read_fd, write_fd = os.pipe()
        try:
            for index in range(self.count):
                self._spawn(index, write_fd)
        finally:
            os.close(write_fd)
        ready = set()
        buffer = b""
        try:
            while len(ready) < self.count:
                if self._stopping:
                    return 0
                for index, process in enumerate(self.workers):
                    if index not in ready and process.poll() is not None:
                        log.error("Worker %d (pid %d) exited with status %s while starting; stopping the others",
                                  index, process.pid, process.returncode)
                        # A worker killed by a signal (negative status) fails as a failed start does.
                        return process.returncode if process.returncode > 0 else 255
                readable, _, _ = select.select([read_fd], [], [], 0.5)
                if readable:
                    chunk = os.read(read_fd, 64)
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    ready.update(int(line) for line in lines if line)
            return None
        finally:
            os.close(read_fd)

    def _restart(self, index):
        """Start worker `index` again, waiting longer each time it died soon after starting."""
        process = self.workers[index]
        ran = time.monotonic() - self._started_at[index]
        self._restarts[index] = 0 if ran > _HEALTHY_S else self._restarts[index] + 1
        delay = _RESTART_DELAYS_S[min(self._restarts[index], len(_RESTART_DELAYS_S) - 1)]
        log.error("Worker %d (pid %d) exited with status %s; starting it again in %d s",
                  index, process.pid, process.returncode, delay)
        deadline = time.monotonic() + delay
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(0.2)
        if not self._stopping:
            self._spawn(index)  # its readiness is its serving: nobody waits for it

    def _stop_all(self, grace):
        for process in self.workers:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.workers:
            if process is None:
                continue
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("Worker pid %d did not stop within %d s; killing it", process.pid, grace)
                process.kill()
                process.wait()

    def run(self, grace):
        """Serve until SIGTERM or SIGINT; the process exit status."""
        def stop(*_):
            self._stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        reserved = []
        try:
            host = self.options.host
            grpc_sock = _reserve("gRPC server", host, self.options.port)
            reserved.append(grpc_sock)
            port = grpc_sock.getsockname()[1]
            self.argv.append(f"--port={port}")
            if self.options.rest_api_port:
                rest_host = self.options.rest_api_host or host
                reserved.append(_reserve("HTTP/REST API", rest_host, self.options.rest_api_port))
            failed = self._start_all()
            for sock in reserved:
                sock.close()
            reserved = []
            if failed is not None:
                self._stop_all(grace)
                return failed
            log.info("Serving with %d worker processes (pids %s) at %s:%d", self.count,
                     ", ".join(str(p.pid) for p in self.workers), host, port)
            while not self._stopping:
                for index, process in enumerate(self.workers):
                    if process.poll() is not None and not self._stopping:
                        self._restart(index)
                time.sleep(0.2)
            log.info("Received shutdown signal; stopping %d worker processes", self.count)
            self._stop_all(grace)
            return 0
        except _BindError as e:
            print(f"Failed to start server. Error: UNAVAILABLE: {e}", file=sys.stderr, flush=True)
            self._stop_all(grace)
            return 255
        finally:
            for sock in reserved:
                sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
