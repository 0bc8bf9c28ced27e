"""The process pool: each processor slot runs its tasks in one child process, killed at the task's timeout."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess

from .app import load_any
from .core.tasks import Started, encode_error, error_json, execute, timeout_error

log = logging.getLogger("luasched.pool")

#: Added to a task's timeout before the kill, so a task that ends right at its limit is not
#: killed for the time its answer spends crossing the pipe.
TIMEOUT_MARGIN_S = 0.1
#: How long close() lets a child exit by itself before killing it.
STOP_GRACE_S = 1.0
#: How long a new child may take to import the APP. Its own bound: the task's timeout is for the
#: task, not for the interpreter start-up and imports that precede it.
START_TIMEOUT_S = 60.0
#: A child's exit code when it ended itself because its parent was gone.
PARENT_GONE_EXIT = 70

# Spawn, never fork: the parent has threads and Redis connections whose locks and sockets a
# forked child would inherit in whatever state they were in.
_spawn = multiprocessing.get_context("spawn")

Task = tuple[str, str, str, int, int, str]  # id, name, args JSON, attempt, timeout ms, processor id


def _child(app: str, conn: Connection) -> None:
    """The child's loop: import the APP, say ready, then run each task received until told to stop."""
    # Ctrl-C on a terminal reaches the whole process group; the parent decides what to do with it.
    # SIGINT was blocked by the parent around the spawn, so none slipped in before this line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # A task must not outlive its processor: once the parent is gone (halted with os._exit, killed),
    # the lease hands the task to another processor, and this copy would run on beside it.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), name="luasched-pool-watch",
                         daemon=True).start()
    try:
        registry = load_any(app).registry
    except Exception as exc:  # anything the APP's import raises must reach the parent, not a hang
        conn.send(("error", encode_error(exc)))
        return
    conn.send(("ready", ""))
    while True:
        try:
            message: Task | None = conn.recv()
        except EOFError:  # the parent went away without saying goodbye
            return
        if message is None:
            return
        task_id, name, args_json, attempt, timeout_ms, pid = message
        answer = execute(registry, Started(task_id, name, args_json, attempt, timeout_ms), pid)
        try:
            conn.send(answer)
        except OSError:  # the parent closed the pipe meanwhile: nobody is left to tell
            return


def _exit_with(parent_sentinel: int) -> None:
    wait([parent_sentinel])
    os._exit(PARENT_GONE_EXIT)


class ProcessRunner:
    """Runs one slot's tasks in a child process (spawned on the first task, again after a death).

    The child imports the APP and looks each task up by name in its registry; arguments and results
    cross the pipe as JSON text. A task past its timeout has its process killed (TaskTimeout); a
    process that dies mid-task fails that task (ProcessDied); either way the next task gets a fresh
    child. Used by one slot thread at a time; ``close`` may come from another thread."""

    def __init__(self, app: str) -> None:
        self.app = app
        self._process: SpawnProcess | None = None
        self._conn: Connection | None = None
        self._busy = threading.Lock()  # held while a task runs, so close() knows not to touch the pipe

    def __repr__(self) -> str:
        pid = self._process.pid if self._process is not None else None
        return f"<ProcessRunner app={self.app!r} child={pid}>"

    @property
    def pid(self) -> int | None:
        """The child's process id, None while there is no child."""
        return self._process.pid if self._process is not None else None

    def run(self, task: Started, pid: str) -> tuple[str, str]:
        with self._busy:
            if self._process is not None and wait([self._process.sentinel], 0):
                self._discard(kill=False)  # died between tasks (killed from outside): not this task's fault
            failure = self._start() if self._process is None else None
            if failure is not None:
                return "error", failure
            assert self._process is not None and self._conn is not None
            process, conn = self._process, self._conn
            try:
                conn.send((task.id, task.name, task.args_json, task.attempt, task.timeout_ms, pid))
            except OSError:  # died just now; its exit code, read below, says why
                pass
            limit_s = task.timeout_ms / 1000 + TIMEOUT_MARGIN_S if task.timeout_ms > 0 else None
            if not wait([conn, process.sentinel], limit_s):
                self._discard(kill=True)
                log.warning("task %s ran past its timeout of %d ms: killed its process", task.id,
                            task.timeout_ms)
                return "error", timeout_error(task.id, task.timeout_ms, "and its process was killed")
            # Only the pipe is read, never waited on again: a grandchild the task forked may hold the
            # child's end open after the child died, so no EOF would come.
            try:
                if conn.poll():
                    outcome, payload = conn.recv()
                    return str(outcome), str(payload)
            except (EOFError, OSError):
                pass
            code = self._discard(kill=False)
            log.warning("the process running task %s died (exit code %s)", task.id, code)
            return "error", error_json("ProcessDied", f"the process running task {task.id} died "
                                                  f"with exit code {_describe(code)}")

    def _start(self) -> str | None:
        """Spawn a child and wait until it has imported the APP; the error JSON if it could not."""
        parent_conn, child_conn = _spawn.Pipe()
        process = _spawn.Process(target=_child, args=(self.app, child_conn), name="luasched-pool",
                                 daemon=True)  # daemon: killed, not awaited, if the parent exits
        # Blocked here, SIGINT stays blocked in the child (the mask survives fork and exec) until it
        # has set SIGINT to be ignored: a Ctrl-C during its start-up cannot kill it half-born. The
        # resource tracker starts first: starting it inside start() would unblock SIGINT again.
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            child_conn.close()  # the parent keeps only its end, so a child's death reads as EOF
        self._process, self._conn = process, parent_conn
        if wait([parent_conn, process.sentinel], START_TIMEOUT_S):
            try:
                status, payload = parent_conn.recv()
                if status == "ready":
                    return None
                self._discard(kill=False)
                error = json.loads(payload)
                return error_json(error["type"], f"cannot load APP {self.app!r} in a pool process: "
                                             f"{error['message']}")
            except (EOFError, OSError):
                code = self._discard(kill=False)
                return error_json("ProcessDied", f"the pool process for APP {self.app!r} died while "
                                             f"starting, with exit code {_describe(code)}")
        self._discard(kill=True)
        return error_json("ProcessStartTimeout", f"the pool process for APP {self.app!r} was not ready "
                                             f"after {START_TIMEOUT_S:g} s and was killed")

    def _discard(self, *, kill: bool) -> int | None:
        """Reap the child (killing it first if asked) and free its handles; its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if kill:
            process.kill()
        process.join(None if kill else STOP_GRACE_S)
        if process.is_alive():  # closed its pipe but lingers: do not wait on it any longer
            process.kill()
            process.join()
        code = process.exitcode
        process.close()
        return code

    def close(self) -> None:
        """Stop the child: ask it to exit, kill it if it has not within STOP_GRACE_S, reap it."""
        if not self._busy.acquire(timeout=STOP_GRACE_S):
            # A task is still running (Processor.stop gave up waiting for it): kill its process;
            # the run() holding the lock then sees the death, reaps the child and reports the task.
            process = self._process
            if process is not None:
                try:
                    process.kill()
                except ValueError:  # run() reaped it meanwhile
                    pass
            return
        try:
            if self._conn is not None:
                try:
                    self._conn.send(None)
                except OSError:  # already dead: nothing to ask
                    pass
            self._discard(kill=False)
        finally:
            self._busy.release()


def _describe(code: int | None) -> str:
    """An exit code, with the signal's name when a signal ended the process (negative codes)."""
    if code is not None and code < 0:
        try:
            return f"{code} (killed by {signal.Signals(-code).name})"
        except ValueError:
            pass
    return str(code)


__all__ = ["ProcessRunner"]
