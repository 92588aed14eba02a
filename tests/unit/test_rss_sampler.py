"""bench/rss_sampler.py finds the process to follow by the whole of its command line, not only the
part it prints (a `meterhouse run`'s `--engine spark` comes after four long paths)."""

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sampler reads /proc")


def _sampler():
    spec = importlib.util.spec_from_file_location("rss_sampler", REPO / "bench" / "rss_sampler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_process_is_found_by_words_past_the_printed_width_of_its_command_line():
    sampler = _sampler()
    marker = "--engine rss-sampler-test-marker"
    child = subprocess.Popen([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)",
                              "x" * 200, marker], stdout=subprocess.PIPE, text=True)
    try:
        # (once it prints, it runs its own command line: until its exec, /proc shows pytest's)
        assert child.stdout.readline() == "started\n"
        assert marker not in sampler.command(child.pid)  # (past the 120 characters printed)
        assert sampler.find_root(marker) == child.pid
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
