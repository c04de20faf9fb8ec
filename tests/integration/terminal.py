"""A bash session fed one block of commands at a time, as a person pastes them into a terminal:
what a block sets (a variable, the directory) stays for the next."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO


class Terminal:
    """bash in `cwd` with exactly `env`; its standard error goes to `log_path`."""

    def __init__(self, env: Mapping[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["bash", "--noprofile", "--norc"],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line)

    def run(self, commands: str, timeout: float = 60) -> str:
        """Run `commands` to their end; what they printed (and a line end, which starts the
        marker of their end on a line of its own). They read nothing from this session's input,
        which carries the blocks that follow."""
        done = f"--- done {uuid.uuid4().hex}"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{{\n{commands}\n}} </dev/null\nprintf '\\n%s\\n' '{done}'\n")
        self.process.stdin.flush()
        printed: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise TimeoutError(
                    f"still running after {timeout}s: {commands}\nprinted: {''.join(printed)}\n"
                    f"stderr: {self.errors()}"
                ) from None
            if line.rstrip("\n") == done:
                return "".join(printed)
            printed.append(line)

    def errors(self) -> str:
        """The end of what the session wrote to standard error."""
        return self.log_path.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
