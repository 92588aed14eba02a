"""The warm dbt server (`dagster_project/warm_dbt.py`): a dbt command run through it behaves as
the installed `dbt` run directly (output, exit status, environment, working directory)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_project.defs.dbt import dbt_project
from dagster_project.warm_dbt import MAX_SOCKET_PATH, SERVER_ENV, SWITCH_ENV, socket_folder, warm_dbt
from tests.conftest import REPO

BIN = Path(sys.executable).parent
CLIENT = str(BIN / "meterhouse-dbt")
DBT = str(BIN / "dbt")


def run(executable: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != SERVER_ENV} | (env or {})
    return subprocess.run([executable, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120)


def default_signals() -> None:
    """(preexec_fn) A child with SIGTERM and SIGINT unblocked and at their default action, whatever
    the pytest worker passes on: these tests are about what our code does with a signal. One
    fresh-clone run saw SIGTERM have no effect on children of its worker; not reproduced."""
    import signal

    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ask(path: str, args: list[str], cwd: Path) -> bytes:
    """Speak the protocol directly: what the server sends back for one command."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall(json.dumps({"args": args, "cwd": str(cwd), "env": dict(os.environ)}).encode() + b"\n")
        reply = b""
        while chunk := conn.recv(1 << 16):
            reply += chunk
    return reply


@pytest.fixture(scope="module")
def server():
    with warm_dbt() as path:
        assert path is not None and os.environ[SERVER_ENV] == path
        yield path
    assert SERVER_ENV not in os.environ


def test_the_server_runs_the_command_in_a_child_and_reports_its_pid_output_and_status(server, tmp_path):
    reply = ask(server, ["--version"], tmp_path)
    head, _, rest = reply.partition(b"\n")
    assert head.startswith(b"\0pid:") and int(head[5:]) > 0
    output, _, status = rest.rpartition(b"\0exit:")
    assert status == b"0\n"
    installed = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('dbt-core'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert f"installed: {installed}".encode() in output


def test_an_error_gives_the_installed_dbts_status_and_message(server, tmp_path):
    args = ["build", "--project-dir", str(tmp_path / "no-such-project")]
    warm, cold = run(CLIENT, args, tmp_path, {SERVER_ENV: server}), run(DBT, args, tmp_path)
    assert warm.returncode == cold.returncode == 2
    message = f"Error: Invalid value for '--project-dir': Path '{tmp_path / 'no-such-project'}' does not exist."
    # (the client gives stdout and stderr on one stream, as dagster-dbt reads them)
    assert message in warm.stdout and message in cold.stderr
    assert "Usage: dbt build [OPTIONS]" in warm.stdout


def test_the_command_sees_the_clients_environment_and_working_directory(server, tmp_path):
    profiles = tmp_path / "profiles-from-env"
    warm = run(CLIENT, ["debug", "--config-dir"], tmp_path, {SERVER_ENV: server, "DBT_PROFILES_DIR": str(profiles)})
    assert warm.returncode == 0 and str(profiles) in warm.stdout
    (tmp_path / "profiles.yml").write_text("{}\n")  # dbt's default profiles dir is the working directory when it has one
    warm = run(CLIENT, ["debug", "--config-dir"], tmp_path, {SERVER_ENV: server})
    assert warm.returncode == 0 and f"open {tmp_path}\n" in warm.stdout


def test_without_a_server_the_client_runs_the_installed_dbt(tmp_path):
    args = ["build", "--project-dir", str(tmp_path / "no-such-project")]
    gone = run(CLIENT, args, tmp_path, {SERVER_ENV: str(tmp_path / "no-server.sock")})
    unset = run(CLIENT, args, tmp_path)
    for result in (gone, unset):
        assert result.returncode == 2
        # the installed dbt itself (exec'd): its usage error on stderr, nothing relayed
        assert "Error: Invalid value for '--project-dir'" in result.stderr and result.stdout == ""


def test_the_server_stops_with_its_block_and_a_nested_block_uses_the_outer_server(tmp_path, monkeypatch):
    monkeypatch.delenv(SERVER_ENV, raising=False)
    with warm_dbt() as path:
        with warm_dbt() as nested:
            assert nested is None and os.environ[SERVER_ENV] == path
        assert os.environ[SERVER_ENV] == path
        assert ask(path, ["--version"], tmp_path).endswith(b"\0exit:0\n")
    assert SERVER_ENV not in os.environ
    assert not os.path.exists(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, pytest.raises(OSError):
        conn.connect(path)



def test_a_run_killed_by_a_signal_leaves_no_socket_folder_behind(tmp_path):
    # `kill <pid>` (SIGTERM) ends Python without its `finally` blocks: the server, which sees its
    # standard input close, removes the folder itself
    import signal
    import time

    environment = {k: v for k, v in os.environ.items() if k != SERVER_ENV} | {"TMPDIR": str(tmp_path)}
    script = ("import sys, time\nfrom dagster_project.warm_dbt import warm_dbt\n"
              "with warm_dbt() as path:\n    print(path, flush=True)\n    time.sleep(120)\n")
    run = subprocess.Popen([sys.executable, "-c", script], env=environment, stdout=subprocess.PIPE, text=True,
                           cwd=Path(__file__).resolve().parents[1], preexec_fn=default_signals)
    path = run.stdout.readline().strip()
    assert Path(path).parent.parent == tmp_path and Path(path).exists()
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=30) == -signal.SIGTERM
    deadline = time.monotonic() + 60  # (the server may still be importing dbt)
    while Path(path).parent.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.iterdir()) == []


def test_a_temp_directory_too_long_for_a_socket_gives_way_to_the_next_one(tmp_path):
    long_base = tmp_path / ("t" * (MAX_SOCKET_PATH - len(str(tmp_path))))  # no room left for a socket
    long_base.mkdir()
    short = tmp_path.parent / "s"  # (pytest's folders may be long themselves: the shortest at hand)
    short.mkdir(exist_ok=True)
    folder = socket_folder((str(long_base), str(short)))
    assert folder is not None and os.path.dirname(folder) == str(short)
    assert list(long_base.iterdir()) == []  # the folder tried in vain was removed
    os.rmdir(folder)
    assert socket_folder((str(long_base),)) is None


def test_under_a_long_temp_directory_the_server_still_starts(tmp_path, monkeypatch):
    # every `meterhouse run` failed with "AF_UNIX path too long" under such a TMPDIR
    import tempfile

    long_tmp = tmp_path / ("t" * (MAX_SOCKET_PATH - len(str(tmp_path))))
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    monkeypatch.delenv(SERVER_ENV, raising=False)
    with warm_dbt() as path:
        assert path.startswith("/tmp/meterhouse-dbt-") and len(path.encode()) <= MAX_SOCKET_PATH
        assert ask(path, ["--version"], tmp_path).endswith(b"\0exit:0\n")
    assert not os.path.exists(os.path.dirname(path))


def test_the_switch_turns_the_warm_process_off(monkeypatch):
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv(SWITCH_ENV, "0")
    with warm_dbt() as path:
        assert path is None and SERVER_ENV not in os.environ


def test_a_signal_to_the_client_reaches_the_command_and_its_status_comes_back(tmp_path):
    # a stand-in server: it answers with the pid of a long command (`sleep`), relays nothing until
    # that command ends, then reports its status as the protocol says
    import signal
    import threading

    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    command = subprocess.Popen(["sleep", "60"], preexec_fn=default_signals)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while not request.endswith(b"\n"):
                request += conn.recv(1 << 16)
            assert json.loads(request)["args"] == ["build"]
            conn.sendall(b"\0pid:" + str(command.pid).encode() + b"\nstarted\n")
            status = command.wait(timeout=30)
            conn.sendall(b"stopped by " + str(-status).encode() + b"\n\0exit:" + str(128 - status).encode() + b"\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    environment = {k: v for k, v in os.environ.items() if k != SERVER_ENV} | {SERVER_ENV: path}
    client = subprocess.Popen([CLIENT, "build"], env=environment, stdout=subprocess.PIPE, text=True,
                              preexec_fn=default_signals)
    # (the client reads the pid, and has its signal handlers, before it relays any output)
    assert client.stdout.readline() == "started\n"
    client.send_signal(signal.SIGTERM)
    output, _ = client.communicate(timeout=30)
    server.join(timeout=30)
    listener.close()
    assert command.returncode == -signal.SIGTERM  # the command got the client's signal
    assert output == f"stopped by {int(signal.SIGTERM)}\n"
    assert client.returncode == 128 + signal.SIGTERM  # the status the server reported


def test_run_pipeline_serves_its_dbt_commands_from_a_warm_process_through_the_resources_executable(tmp_path, monkeypatch):
    # (the pipeline itself replaced: what matters is the server around it, and that dagster-dbt's
    # executable is the client that uses it)
    from dagster_project import pipeline
    from dagster_project.defs.dbt import dbt_resource

    monkeypatch.delenv(SERVER_ENV, raising=False)
    seen = {}

    def inner(*args):
        seen["path"] = os.environ.get(SERVER_ENV)
        seen["reply"] = ask(seen["path"], ["--version"], tmp_path)
        return {}

    monkeypatch.setattr(pipeline, "_run", inner)
    pipeline.run_pipeline(tmp_path, tmp_path, tmp_path / "w.duckdb", tmp_path / "out", None)
    assert seen["path"] and seen["reply"].startswith(b"\0pid:") and seen["reply"].endswith(b"\0exit:0\n")
    assert SERVER_ENV not in os.environ
    assert Path(dbt_resource().dbt_executable) == Path(CLIENT)



def test_the_server_prewarms_dbts_schemas_without_starting_a_thread():
    # in a new process, as the server: after prewarm() no schema is built again (a child then
    # validates the project without building them), and the process still has one thread, which
    # forking needs
    dbt_project()  # (the project's own parse, which prewarm() reads)
    script = """
import os, importlib
from dbt.cli.main import cli
import dbt_common.dataclass_schema as schemas
from dagster_project.warm_dbt import PREWARMED_SCHEMAS, prewarm
prewarm()
def not_again(cls, *args, **kwargs):
    raise AssertionError(f"schema of {cls.__name__} built again")
schemas.build_json_schema = not_again
for module, names in PREWARMED_SCHEMAS.items():
    for name in names:
        assert getattr(importlib.import_module(module), name).json_schema()["type"] == "object"
print(len(os.listdir("/proc/self/task")))
"""
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, cwd=repo,
                            env=os.environ | {"PYTHONPATH": str(repo)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_after_prewarm_reading_a_parse_generates_no_decoder_or_encoder():
    # in a new process, as the server: prewarm() reads the project's parse once; a child then reads
    # its own parse and builds the manifest's flat graph without generating code (mashumaro's
    # decoders and encoders, about 0.2 s of each command)
    dbt_project()
    script = """
from dbt.cli.main import cli
from dbt.contracts.graph.manifest import Manifest
from mashumaro.core.meta.code.builder import CodeBuilder
from dagster_project.warm_dbt import PROJECT_PARSE, prewarm
generated = []
for name in ("add_unpack_method", "add_pack_method"):
    def counted(self, *args, _original=getattr(CodeBuilder, name), **kwargs):
        generated.append(self.cls.__name__)
        return _original(self, *args, **kwargs)
    setattr(CodeBuilder, name, counted)
prewarm()
before = len(generated)
Manifest.from_msgpack(PROJECT_PARSE.read_bytes()).build_flat_graph()
print(before > 0, generated[before:])
"""
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, cwd=repo,
                            env=os.environ | {"PYTHONPATH": str(repo)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True []"


def test_the_warm_dbt_child_keys_a_parse_to_the_warehouse_s_name_not_its_folder():
    """In the process that runs a dbt command, two DuckDB profiles that differ only in the
    warehouse's folder have the same connection keys (dbt's partial parse is keyed to them); a
    warehouse of another name (another database) has other keys. Outside, the folder counts."""
    script = (
        "from dbt.adapters.duckdb.credentials import DuckDBCredentials as C\n"
        "from dagster_project import warm_dbt\n"
        "def info(path): return list(C.from_dict({'path': path, 'schema': 'main'}).connection_info())\n"
        "before = info('/a/warehouse.duckdb') == info('/b/warehouse.duckdb')\n"
        "warm_dbt.parse_without_warehouse_folder()\n"
        "warm_dbt.parse_without_warehouse_folder()  # (twice: the same)\n"
        "target = dict(C.from_dict({'path': '/a/warehouse.duckdb', 'schema': 'main'}).connection_info(with_aliases=True))\n"
        "print(before, info('/a/warehouse.duckdb') == info('/b/warehouse.duckdb'),\n"
        "      info('/a/warehouse.duckdb') == info('/a/meterhouse.duckdb'), ('database', 'warehouse') in info('/a/warehouse.duckdb'),\n"
        "      target['path'] == '/a/warehouse.duckdb')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == ["False", "True", "False", "True", "True"]  # (Jinja's `target` keeps the path)


def test_nothing_in_the_dbt_project_reads_target_path():
    """A parse is reused for another warehouse of the same name (the folder is not in dbt's keys in
    the warm dbt process), which holds only while no model, macro or test renders `target.path`."""
    sources = [p for folder in ("models", "macros", "tests", "seeds", "analyses", "snapshots")
               for p in (REPO / "dbt_project" / folder).rglob("*") if p.suffix in (".sql", ".yml", ".yaml")]
    assert len(sources) > 20
    sources.append(REPO / "dbt_project" / "dbt_project.yml")
    reads_path = re.compile(r"""target\s*(\.|\[\s*["']|\.get\(\s*["'])path\b|credentials\.path\b""")
    assert reads_path.search("{{ target['path'] }} {{ target.get('path') }}")  # (the pattern finds what it must)
    assert [p for p in sources if reads_path.search(p.read_text())] == []
