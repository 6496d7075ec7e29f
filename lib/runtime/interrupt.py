"""Ctrl-C and SIGTERM during a run: the runner stops the chapter's kernel and records ``status: interrupted``.

The chapter runs in a worker thread (papermill, nbclient and their asyncio loop) while the main
thread waits for it. For the length of a run :class:`InterruptGuard` turns SIGINT and SIGTERM into
a flag instead of a ``KeyboardInterrupt`` raised wherever the main thread happens to be, and it
installs its handler whatever it finds: a runner started as a background job of a non-interactive
shell inherits SIGINT *ignored*, and a user's Ctrl-C must still work. Once the flag is set,
:func:`run_in_worker` stops the run at whatever moment it is in:

* before the kernel is launched, the launch is refused (:class:`RunStopped`);
* while the kernel starts (no cell has begun), the kernel's process group is killed;
* during a cell, the kernel's process group gets SIGINT (what Jupyter's *interrupt* sends), so the
  cell raises ``KeyboardInterrupt`` and papermill saves the notebook; a cell that ignores it is
  killed after :data:`KILL_GRACE_S` seconds;
* between two cells, the next one is not started (:class:`RunStopped` from nbclient's
  ``on_cell_start`` hook);
* after the last cell, the runner finishes writing the run's files and records it as interrupted.

The worker cancels and awaits every task left on its event loop and closes the loop before it
ends, so no ``Task exception was never retrieved`` report reaches stderr after a run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "KILL_GRACE_S",
    "RunStopped",
    "InterruptGuard",
    "KernelHandle",
    "kernel_manager_class",
    "run_in_worker",
]

#: Seconds a cell has to stop after the kernel got SIGINT before the kernel is killed.
KILL_GRACE_S = 5.0
#: Seconds to wait for papermill to return after the kernel was killed (it notices within about a second).
_WORKER_GRACE_S = 60.0
_POLL_S = 0.1


class RunStopped(Exception):  # noqa: N818 - not an error: the run was asked to stop
    """Raised in the worker when an interrupt stops the run before a kernel launch or a cell start."""

    def __init__(self, message: str, *, cell_index: int | None = None):
        super().__init__(message)
        self.cell_index = cell_index


class InterruptGuard:
    """SIGINT and SIGTERM set :attr:`event` instead of raising, while the guard is entered.

    Only the main thread can install signal handlers; elsewhere the guard does nothing (the
    process's own handlers stay in charge). The handlers found on entry, ``SIG_IGN`` included,
    are put back on exit.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._saved: dict[int, Any] = {}

    @property
    def interrupted(self) -> bool:
        """Whether SIGINT or SIGTERM arrived since the guard was entered."""
        return self.event.is_set()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._saved.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._saved.clear()


class KernelHandle:
    """What the main thread needs to stop the worker's kernel: its process, and whether a cell began.

    Parameters
    ----------
    stop : threading.Event
        Set when the run must stop (:attr:`InterruptGuard.event`).
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.pid: int | None = None
        self.pgid: int | None = None
        self.cell_started = False

    def on_cell_start(self, cell: Any = None, cell_index: int | None = None, **_: Any) -> None:
        """nbclient's ``on_cell_start`` hook: refuse to start a cell once the run must stop."""
        if self.stop.is_set():
            raise RunStopped("interrupted before a cell started", cell_index=cell_index)
        self.cell_started = True

    def send(self, signum: int) -> None:
        """Send ``signum`` to the kernel's process group (its own session), or to the kernel alone."""
        if self.pid is None:
            return
        try:
            if self.pgid is not None and self.pgid != os.getpgid(0) and hasattr(os, "killpg"):
                os.killpg(self.pgid, signum)
            else:
                os.kill(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kernel_manager_class(log_path: Path, handle: KernelHandle) -> Any:
    """A kernel manager whose kernel writes its stderr to ``log_path`` and registers its process in ``handle``.

    The launch is refused (:class:`RunStopped`) once ``handle.stop`` is set.
    """
    from jupyter_client.manager import AsyncKernelManager

    class _RunKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if handle.stop.is_set():
                raise RunStopped("interrupted before the kernel was launched")
            kw["stderr"] = open(log_path, "ab")  # noqa: SIM115 - owned by the kernel process
            try:
                await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                kw["stderr"].close()
            handle.pgid = getattr(self.provisioner, "pgid", None)
            handle.pid = getattr(self.provisioner, "pid", None)

    return _RunKernelManager


def _close_event_loop() -> None:
    """Cancel and await every task left on this thread's jupyter/asyncio loop, then close the loop."""
    try:
        from jupyter_core.utils import ensure_event_loop
    except ImportError:  # pragma: no cover - jupyter_core comes with papermill
        return
    loop = ensure_event_loop()
    if loop.is_running() or loop.is_closed():
        return
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def run_in_worker(call: Callable[[], Any], *, handle: KernelHandle,
                  grace_s: float = KILL_GRACE_S) -> tuple[Any, BaseException | None]:
    """Run ``call`` (papermill) in a worker thread; stop its kernel when ``handle.stop`` is set.

    Parameters
    ----------
    call : callable
        What executes the notebook; it must use a kernel manager from :func:`kernel_manager_class`
        and ``handle.on_cell_start`` as nbclient's ``on_cell_start`` hook.
    handle : KernelHandle
        The kernel's process and the stop flag.
    grace_s : float
        Seconds between SIGINT to a running cell's kernel and SIGKILL to its process group.

    Returns
    -------
    result, error
        What ``call`` returned (``None`` if it raised) and what it raised (``None`` if it returned).
    """
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = call()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread, which decides
            box["error"] = err
        finally:
            _close_event_loop()

    worker = threading.Thread(target=work, name="studies-run", daemon=True)
    worker.start()
    interrupted_at = killed_at = None
    while True:
        worker.join(_POLL_S)
        if not worker.is_alive():
            break
        if not handle.stop.is_set() or handle.pid is None:
            continue  # not stopping, or the kernel is not launched yet (its launch will be refused)
        now = time.monotonic()
        if killed_at is not None:
            if now - killed_at > _WORKER_GRACE_S:
                break  # papermill did not return after its kernel died: record what was saved
        elif not handle.cell_started:
            handle.send(signal.SIGKILL)  # a starting kernel has nothing to save
            killed_at = now
        elif interrupted_at is None:
            handle.send(signal.SIGINT)
            interrupted_at = now
        elif now - interrupted_at > grace_s:
            handle.send(signal.SIGKILL)
            killed_at = now
    return box.get("result"), box.get("error")
