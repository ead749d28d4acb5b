"""SIGKILL a real materialization at its N-th write into an asset's folders.

Kill times on a clock mostly land in imports and compute; this counts the writes themselves:
every file-system call that changes something (an open for writing, rename, unlink, mkdir, link,
rmtree) whose path lies under one of the watched folders, as Python's audit hooks report them
before the call runs, and the ``renameat2`` exchange that publishes a staged folder (its audit
event, the symbol lookup just before the call, names no path; only ``publish_folder`` makes it).
A child killed at write N has done writes 1..N-1 and not N: kills at seeded N from 1 to the count
of a complete run are spread over the whole write path, each a state a crash could leave. Writers
in C++ (pyarrow's parquet writer, safetensors) raise no audit event for their own ``open``; every
one of them writes to a temp name that ``atomic_path`` then renames, and the rename counts.

A zygote process imports the pipeline once (``python -m tests.helpers.killpoint``, one JSON
request a line on stdin, one answer a line on stdout) and forks a child per run: the child runs
``orchestration.cli.materialize`` for one asset (or one partition), kills itself with SIGKILL at
write ``kill_at`` (0: never) and otherwise reports how many writes it made. The settings are read
when the pipeline is imported, so a zygote serves one params file (``PD_PARAMS`` of its
environment). The zygote never runs torch, so a fork inherits no thread pools.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {  # event -> indexes of (path, dir_fd) pairs in its arguments
    "os.rename": ((0, 2), (1, 3)),
    "os.remove": ((0, 1),),
    "os.rmdir": ((0, 1),),
    "os.mkdir": ((0, 2),),
    "os.link": ((0, 2), (1, 3)),
    "os.symlink": ((1, 2),),
    "os.truncate": ((0, None),),
    "os.chmod": ((0, 2),),
    "shutil.rmtree": ((0, 1),),
    "shutil.copyfile": ((1, None),),
}


def _resolve(path: Any, dir_fd: Any) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    name = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(name):
        name = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
    return os.path.realpath(name)  # the watched roots are real paths too: a symlinked /tmp still matches


def written_paths(event: str, args: tuple[Any, ...]) -> list[str]:
    """The paths a file-system audit event changes (empty for reads and other events)."""
    if event == "open":
        path, _, flags = args
        return [p] if isinstance(flags, int) and flags & _WRITE_FLAGS and (p := _resolve(path, None)) else []
    pairs = _PATH_EVENTS.get(event, ())
    return [p for i, d in pairs if (p := _resolve(args[i], None if d is None else args[d]))]


class WriteCounter:
    """An audit hook counting writes under ``roots``; at write ``kill_at`` it sends SIGKILL."""

    def __init__(self, roots: list[str], kill_at: int) -> None:
        self.roots = [os.path.realpath(r) for r in roots]
        self.kill_at, self.count, self._busy = kill_at, 0, False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "ctypes.dlsym" and args[1] == "renameat2":
            self._count()
        if self._busy or not (event == "open" or event in _PATH_EVENTS):
            return
        self._busy = True  # the hook's own calls (readlink) must not count
        try:
            paths = written_paths(event, args)
        finally:
            self._busy = False
        if any(p == r or p.startswith(r + os.sep) for p in paths for r in self.roots):
            self._count()

    def _count(self) -> None:
        self.count += 1
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def _child(request: dict[str, Any]) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    from orchestration.cli import materialize

    counter = WriteCounter(request["watch"], int(request["kill_at"]))
    sys.addaudithook(counter)
    partition = request.get("partition")
    code = materialize([request["key"]], False, [partition] if partition else None)
    sys.stdout.flush()
    sys.stderr.flush()
    Path(request["result"]).write_text(json.dumps({"code": code, "writes": counter.count}))
    return code


def _serve() -> None:
    import orchestration.cli  # noqa: F401  (the pipeline, imported once, before any fork)
    import orchestration.definitions  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        Path(request["result"]).unlink(missing_ok=True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        result = json.loads(Path(request["result"]).read_text()) if Path(request["result"]).exists() else {}
        answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0, **result}
        print(json.dumps(answer), flush=True)


class Zygote:
    """The test's side: start the zygote with ``env``, then ``run`` one materialization a call."""

    def __init__(self, env: dict[str, str], repo: Path, scratch: Path) -> None:
        self.scratch = scratch
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.killpoint"], cwd=repo, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.runs = 0

    def run(self, key: str, watch: list[Path], kill_at: int = 0, partition: str | None = None) -> dict[str, Any]:
        """``{"signal": 9}`` when killed, else ``{"signal": 0, "code": ..., "writes": ...}``; the
        child's output is in ``log`` (appended, one file for every run)."""
        self.runs += 1
        request = {"key": key, "partition": partition, "watch": [str(w) for w in watch],
                   "kill_at": kill_at, "log": str(self.scratch / "runs.log"),
                   "result": str(self.scratch / "result.json")}  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the zygote died; see {self.scratch / 'runs.log'}"
        return json.loads(answer)

    def log_tail(self, n: int = 4000) -> str:
        path = self.scratch / "runs.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


if __name__ == "__main__":
    _serve()
