"""The benchmarks' CPU accounting counts a server's descendants, as gunicorn's workers are."""

import subprocess
import sys
import time

from bench.worker import process_tree_cpu

SPIN = (
    "import signal, time\n"
    "end = time.process_time() + 0.5\n"
    "while time.process_time() < end: pass\n"
    "signal.pause()"
)
# A parent that waits for its child, which spins for half a second of CPU and then idles.
PARENT = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {SPIN!r}]).wait()"


def test_a_process_tree_counts_the_cpu_its_children_spent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 30
        while process_tree_cpu(parent.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_tree_cpu(parent.pid) >= 0.5
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
