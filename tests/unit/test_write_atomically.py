"""Output files get the mode a plain `open()` gives them: 0666 less the user's umask (not the
0600 of a temporary file), so that a team's umask lets the team read the invoices."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

WRITE = """
import os, sys
from pathlib import Path
from dagster_project.publish.files import write_atomically
path = Path(sys.argv[1])
write_atomically(path, b"first")
write_atomically(path, b"second")  # replacing a file already there
open(sys.argv[2], "w").close()      # what a plain open() gives, for comparison
"""


@pytest.mark.parametrize(("umask", "mode"), [(0o027, 0o640), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_has_the_mode_open_gives_under_the_umask(tmp_path, umask, mode):
    target, plain = tmp_path / "out" / "invoice.json", tmp_path / "plain"
    subprocess.run([sys.executable, "-c", WRITE, str(target), str(plain)], check=True, cwd=REPO, umask=umask)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == mode == plain.stat().st_mode & 0o777
    assert [p.name for p in target.parent.iterdir()] == ["invoice.json"]  # no partial file left


def test_a_write_that_fails_leaves_no_partial_file(tmp_path):
    """The target is a folder: the rename fails (IsADirectoryError), the error reaches the caller,
    and the temporary file is removed."""
    from dagster_project.publish.files import write_atomically

    (tmp_path / "invoice.json").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path / "invoice.json", b"{}")
    assert [p.name for p in tmp_path.iterdir()] == ["invoice.json"]
