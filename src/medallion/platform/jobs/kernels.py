"""Jupyter kernels for notebook tasks, started ahead of time so a task never waits for one.

A kernel costs ~3 s to start, import PySpark and open its first Spark Connect channel: more than
a small task itself. The pool starts kernels in the background, already warmed, and recycles a
kernel whose task succeeded for the next task of the same run: before reuse its namespace is
reset, its Spark session stopped and its task context rebound, so each notebook still starts
from a clean namespace and a session of its own (temp views do not leak). A kernel whose task
failed or timed out is never reused. With ``size=0`` every task starts a fresh kernel on demand.

The pool never holds more than ``limit`` kernels (the run's parallelism): a kernel starts only
when a task needs one and none is ready, idle or already starting. Starting kernels is CPU-heavy
(imports, a Connect session), so a pool that started one per acquire would compete with the very
tasks it serves.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from medallion.lakehouse.runtime import CONTEXT_ENV, TaskContext

# Imports every notebook makes; paid while the kernel waits in the pool, not while a task runs.
WARMUP_CODE = (
    "import medallion.lakehouse.runtime, medallion.lakehouse.spark, pyspark.sql, "
    "pyspark.sql.functions"
)
# The first Spark Connect session of a process costs ~2.5 s (gRPC channel, protobuf classes).
CONNECT_WARMUP_CODE = (
    "from medallion.lakehouse.spark import get_spark as _get_spark\n"
    "_get_spark().range(1).collect()\n"
    "_get_spark().stop()\n"
    "del _get_spark"
)
RESET_CODE = "from medallion.lakehouse.runtime import reset_kernel as _reset\n_reset()"


class PromptClient(AsyncKernelClient):
    """The client papermill (nbclient) runs a task's cells with: ready as soon as the kernel is.

    jupyter_client's ``wait_for_ready`` ends by listening 0.2 s for output nobody asked for (it
    drains what a starting kernel printed); nbclient paid that on every task. This one is ready
    when the kernel has answered a ``kernel_info`` request on the shell channel and reported
    that request's ``idle`` status on the output channel, which proves that channel connected.
    Nothing needs draining: nbclient reads only the output of its own requests.
    """

    async def _wait_until_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            reply = await self._reply_to(request, within=1.0)
            if reply is not None and await self._idle_after(request, within=0.2):
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    wait_for_ready = _wait_until_ready

    async def _reply_to(self, request: str, *, within: float) -> dict[str, Any] | None:
        """The shell reply to ``request``; None when none came ``within`` seconds."""
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message: dict[str, Any] = await self.get_shell_msg(timeout=remaining)
            except Empty:
                return None
            if message["parent_header"].get("msg_id") == request:
                return message
        return None

    async def _idle_after(self, request: str, *, within: float) -> bool:
        """True once the kernel's ``idle`` status for ``request`` arrives on the output channel;
        False when the channel is silent ``within`` seconds (not connected yet)."""
        while True:
            try:
                message: dict[str, Any] = await self.get_iopub_msg(timeout=within)
            except Empty:
                return False
            if (message["msg_type"] == "status"
                    and message["content"].get("execution_state") == "idle"
                    and message["parent_header"].get("msg_id") == request):
                return True


@dataclass
class Kernel:
    """A started kernel and its manager."""

    # Async, because nbclient (under papermill) only notices a killed kernel through an async
    # client; a blocking one waits on its output channel forever.
    manager: AsyncKernelManager
    notebooks: set[Path] = field(default_factory=set)  # the notebooks it has run
    # Its setup client: shell channel only, connected once, after one wait for the kernel
    # (a client per bind and per reset cost a task 0.4 s of waiting with jupyter_client's).
    _setup: BlockingKernelClient | None = field(default=None, repr=False)

    def execute_silently(self, code: str, timeout: float = 120) -> None:
        """Run setup code that leaves no trace in any notebook."""
        self._require_running()
        client = self._setup_client(timeout)
        msg_id = client.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"kernel setup failed: no reply within {timeout:g} s")
            try:  # a reply, or every second a look whether the kernel still runs
                reply = client.get_shell_msg(timeout=min(remaining, 1.0))
            except Empty:
                self._require_running()
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise RuntimeError(
                f"kernel setup failed: {content.get('ename')}: {content.get('evalue')}"
            )

    def _require_running(self) -> None:
        if self.pid is None or not run_sync(self.manager.is_alive)():
            raise RuntimeError("kernel setup failed: the kernel is not running")

    def _setup_client(self, timeout: float) -> BlockingKernelClient:
        """The kernel's setup client, connected on first use, once the kernel is ready."""
        if self._setup is None:
            waiting = self.manager.client()  # a PromptClient: ready as soon as the kernel is
            # No heartbeat channel: until its first beat it reports a busy, slow-starting
            # kernel as dead ("Kernel died before replying to kernel_info"). The reply
            # timeout still applies.
            waiting.start_channels(hb=False)
            try:
                run_sync(waiting.wait_for_ready)(timeout=timeout)
            finally:
                waiting.stop_channels()
            setup = self._client()
            setup.start_channels(iopub=False, stdin=False, hb=False, control=False)
            self._setup = setup
        return self._setup

    def _client(self) -> BlockingKernelClient:
        # The process's one ZeroMQ context: a context of its own per client would block the
        # garbage collector (its ``term`` waits) on a kernel dropped without ``shutdown``.
        client = BlockingKernelClient(context=zmq.Context.instance())
        client.load_connection_info(self.manager.get_connection_info())
        client.session.key = self.manager.session.key
        return client

    def bind(self, context: TaskContext, cwd: Path) -> None:
        """Point the kernel at a task: its context and working directory."""
        self.execute_silently(
            "import os as _os\n"
            f"_os.environ[{CONTEXT_ENV!r}] = {context.to_json()!r}\n"
            f"_os.chdir({str(cwd)!r})\n"
            "del _os"
        )

    @property
    def pid(self) -> int | None:
        """The kernel process's id, while it runs."""
        process = getattr(self.manager.provisioner, "process", None)
        return getattr(process, "pid", None)

    def kill(self) -> None:
        """Kill the kernel process at once (a timeout): papermill then sees a dead kernel."""
        provisioner = self.manager.provisioner
        process = getattr(provisioner, "process", None)
        if process is not None and process.poll() is None:
            process.kill()

    def shutdown(self) -> None:
        """Stop the kernel process (idempotent)."""
        if self._setup is not None:
            self._setup.stop_channels()
            self._setup = None
        try:
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)
        except RuntimeError:
            pass
        run_sync(self.manager.cleanup_resources)()


# Kernels start one at a time: concurrent starts from several threads share jupyter_client's
# per-thread event-loop machinery badly (kernels were seen dying before their first reply), and
# on two cores they gain nothing.
_START_LOCK = threading.Lock()


def start_kernel(env: Mapping[str, str], cwd: Path, *, warm: bool = True) -> Kernel:
    """Start one kernel with ``env`` (e.g. ``SPARK_REMOTE``), optionally warmed with imports."""
    with _START_LOCK:
        return _start_kernel(env, cwd, warm=warm)


def _start_kernel(env: Mapping[str, str], cwd: Path, *, warm: bool) -> Kernel:
    # IPC sockets: faster than loopback TCP, and not reachable from other machines.
    socket_dir = Path(tempfile.gettempdir()) / "medallion-kernels"
    socket_dir.mkdir(exist_ok=True)
    manager = AsyncKernelManager(
        kernel_name="python3", transport="ipc", ip=str(socket_dir / uuid.uuid4().hex),
        client_class=f"{PromptClient.__module__}.{PromptClient.__qualname__}",
    )
    run_sync(manager.start_kernel)(env={**os.environ, **env}, cwd=str(cwd))
    kernel = Kernel(manager)
    if warm:
        code = WARMUP_CODE
        if "SPARK_REMOTE" in env:
            code += "\n" + CONNECT_WARMUP_CODE
        kernel.execute_silently(code)
    return kernel


class KernelPool:
    """Up to ``limit`` warmed kernels: ``size`` started ahead, more on demand, all recycled.

    ``size=0`` keeps none: every task starts a fresh, unwarmed kernel and shuts it down.

    A task gets, when one is free, a kernel that has run the same notebook before: its imports
    (the DQ breaker's Great Expectations, ~5-10 s cold) are already paid. Otherwise the kernel
    that has run the fewest notebooks, which keeps the specialised ones for their own tasks. A
    pool may serve several runs (``RunOptions.kernels``): a child run (``run_job_task``) always
    shares its parent's, and the demo keeps one for all its days.
    """

    def __init__(self, env: Mapping[str, str], cwd: Path, size: int, limit: int = 0) -> None:
        self._env = dict(env)
        self._cwd = cwd
        self._size = size
        self._limit = max(size, limit)
        self._ready: list[Kernel] = []
        self._errors: list[BaseException] = []
        self._changed = threading.Condition()
        self._alive = 0  # started or starting, not yet shut down
        self._starting = 0
        self._resetting: list[Kernel] = []  # released, being reset for the next task
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        for _ in range(size):
            self._start_in_background()

    @property
    def keeps_kernels(self) -> bool:
        """False for ``size=0``: a fresh kernel per task, none kept."""
        return self._size > 0

    @property
    def env(self) -> Mapping[str, str]:
        """The environment its kernels were started with (``SPARK_REMOTE``)."""
        return dict(self._env)

    def _start_in_background(self) -> None:
        """Start one more kernel (the caller holds no lock; counts are updated here)."""
        with self._changed:
            self._alive += 1
            self._starting += 1
        self._in_background(self._start_one, "kernel-pool")

    def _in_background(self, work: Callable[[], None], name: str) -> None:
        """Run ``work`` on a thread of its own, which ``close`` waits for."""
        thread = threading.Thread(target=work, daemon=True, name=name)
        with self._changed:
            self._threads = [*(t for t in self._threads if t.is_alive()), thread]
        thread.start()

    def _start_one(self) -> None:
        try:
            kernel = start_kernel(self._env, self._cwd)
        except BaseException as error:  # handed to the task that waits for this kernel
            with self._changed:
                self._alive -= 1
                self._starting -= 1
                self._errors.append(error)
                self._changed.notify_all()
            return
        with self._changed:
            self._starting -= 1
            if not self._closed.is_set():
                self._ready.append(kernel)
                self._changed.notify_all()
                return
        kernel.shutdown()

    def acquire(self, notebook: Path | None = None) -> Kernel:
        """A started kernel for one task (running ``notebook``); hand it back with ``release``."""
        if self._size == 0:
            return start_kernel(self._env, self._cwd, warm=False)
        while True:
            with self._changed:
                kernel = self._take(notebook)
                if kernel is not None:
                    return kernel
                if self._errors:
                    raise self._errors.pop(0)
                # Nothing ready and nothing on its way for this task: start one if allowed.
                start = (self._starting == 0 and not self._resetting
                         and self._alive < self._limit)
                if not start:
                    self._changed.wait(timeout=0.5)
            if start:
                self._start_in_background()

    def _take(self, notebook: Path | None) -> Kernel | None:
        """The kernel that suits ``notebook`` best, taken out of the pool (lock held).

        None while there is none ready, or while the best one is still being reset: it is
        worth the wait (a reset takes ~0.1 s, a cold import seconds). A ready kernel wins a tie.
        """
        candidates = [*self._ready, *self._resetting]
        if not candidates:
            return None
        same = [kernel for kernel in candidates if notebook in kernel.notebooks]
        kernel = same[0] if same else min(candidates, key=lambda k: len(k.notebooks))
        if kernel not in self._ready:
            return None
        self._ready.remove(kernel)
        if notebook is not None:
            kernel.notebooks.add(notebook)
        return kernel

    def release(self, kernel: Kernel, *, reusable: bool) -> None:
        """Hand a kernel back after its task: recycled if the task succeeded, else shut down.

        The reset before its next task runs in the background: the task that released it is
        done, and its dependents need not wait for the reset."""
        if reusable and self._size > 0 and not self._closed.is_set():
            with self._changed:
                self._resetting.append(kernel)
            self._in_background(lambda: self._recycle(kernel), "kernel-reset")
            return
        self._retire(kernel)

    def _recycle(self, kernel: Kernel) -> None:
        """Reset a released kernel and make it ready; a kernel that cannot reset is retired."""
        try:
            kernel.execute_silently(RESET_CODE, timeout=30)
            reset = True
        except Exception:  # a kernel that cannot reset is not worth keeping
            reset = False
        with self._changed:
            self._resetting.remove(kernel)
            if reset and not self._closed.is_set():
                self._ready.append(kernel)
                self._changed.notify_all()
                return
            self._changed.notify_all()
        self._retire(kernel)

    def _retire(self, kernel: Kernel) -> None:
        kernel.shutdown()
        if self._size > 0:
            with self._changed:
                self._alive -= 1
                self._changed.notify_all()

    def close(self) -> None:
        """Shut down every kernel the pool still holds."""
        self._closed.set()
        with self._changed:  # a reset started as the pool closed retires its kernel first
            self._changed.wait_for(lambda: not self._resetting, timeout=60)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=60)
        with self._changed:
            ready, self._ready = self._ready, []
        for kernel in ready:
            kernel.shutdown()
