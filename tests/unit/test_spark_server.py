"""The run's one Spark (`dagster_project/spark_server.py`), without Java: a stand-in server (a Python
process that listens on the port it is given, and carries the command line's markers) is started,
shared and stopped as the Spark Connect server would be; the real one is started by the Spark e2e
tests (each run's own in tests/e2e/test_spark_incremental.py, one shared by several warehouses in
tests/e2e/conftest.py)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jinja2
import pytest
import yaml

from dagster_project import spark_server
from tests.conftest import REPO

LISTENER = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(600)"


@pytest.fixture
def stand_in(monkeypatch):
    """spark_server starts a listening Python process in place of Spark; the ports it was given."""
    ports = []

    def command(spark_home, master, settings, port):
        ports.append(port)
        return [sys.executable, "-c", LISTENER, str(port), spark_server.SERVER_CLASS,
                f"spark.hadoop.javax.jdo.option.ConnectionURL={settings['spark.hadoop.javax.jdo.option.ConnectionURL']}"]

    monkeypatch.setattr(spark_server, "server_command", command)
    monkeypatch.setattr(spark_server, "_spark_home", lambda: Path("/nonexistent"))
    yield ports
    for spark_dir in list(spark_server._running):
        spark_server.stop(spark_dir)


def _alive(pid: int) -> bool:
    try:
        state = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:")]
    except OSError:
        return False
    return state[0].split()[1] != "Z"


def test_only_a_local_master_or_a_local_spark_remote_shares_one_spark():
    assert spark_server.shares_one_spark(None, "local[*]")
    assert spark_server.shares_one_spark(None, "local[2]")
    assert spark_server.shares_one_spark("local[2]", "local[*]")
    assert not spark_server.shares_one_spark(None, "spark://cluster:7077")
    assert not spark_server.shares_one_spark(None, "yarn")
    assert not spark_server.shares_one_spark("sc://spark-connect.internal:15002", "local[*]")


def test_the_server_starts_with_the_static_settings_of_dbt_s_spark_target(tmp_path):
    """The settings a Spark takes only at its start are the same for the run's server as for a
    Spark session of dbt's target `spark` (profiles.yml, rendered as dbt renders env_var)."""
    env = {"METERHOUSE_SPARK_DIR": str(tmp_path)}
    profile = jinja2.Template((REPO / "dbt_project" / "profiles.yml").read_text()).render(
        env_var=lambda name, default=None: env.get(name, default))
    parameters = yaml.safe_load(profile)["meterhouse"]["outputs"]["spark"]["server_side_parameters"]
    settings = spark_server.static_settings(tmp_path, "2g")
    # (dbt-spark's session enables the Hive catalog itself: `enableHiveSupport()`)
    assert {k: v for k, v in settings.items() if k != "spark.sql.catalogImplementation"} == {
        k: parameters[k] for k in settings if k in parameters}
    assert settings.keys() - parameters.keys() == {"spark.sql.catalogImplementation"}
    assert settings["spark.sql.warehouse.dir"] == f"{tmp_path}/tables"


def test_the_server_listens_on_this_machine_only_on_the_port_given(tmp_path):
    command = spark_server.server_command(Path("/opt/spark"), "local[2]", {"spark.ui.enabled": "false"}, 40123)
    assert command[:3] == ["/opt/spark/bin/spark-submit", "--class", spark_server.SERVER_CLASS]
    assert command[command.index("--master") + 1] == "local[2]"
    confs = [command[i + 1] for i, arg in enumerate(command) if arg == "--conf"]
    assert confs == ["spark.ui.enabled=false", "spark.connect.grpc.binding.address=127.0.0.1",
                     "spark.connect.grpc.binding.port=40123"]


def test_within_a_run_one_server_serves_every_command_and_is_stopped_at_its_end(tmp_path, stand_in):
    heard = []
    with spark_server.one_spark_per_run(tmp_path):
        with spark_server.serving(tmp_path, "local[2]", heard.append) as first:
            assert (tmp_path / spark_server.RECORD).is_file()
        with spark_server.serving(tmp_path, "local[2]", heard.append) as second:
            assert second is first and _alive(first.process.pid)
        assert first.url == f"sc://127.0.0.1:{stand_in[0]}"
    assert len(stand_in) == 1
    assert first.process.poll() is not None  # (stopped, and waited for)
    assert not (tmp_path / spark_server.RECORD).exists()
    assert len([line for line in heard if "started for this run" in line]) == 1


def test_the_run_s_last_command_stops_its_server(tmp_path, stand_in):
    heard = []
    with spark_server.one_spark_per_run(tmp_path):
        with spark_server.serving(tmp_path, "local[2]", heard.append) as first:
            pass
        with spark_server.serving(tmp_path, "local[2]", heard.append, last=True) as last:
            assert last is first
        assert first.process.poll() is not None
        assert heard[-1].startswith("the run's Spark stopped")
    assert len(stand_in) == 1


def test_outside_a_run_each_command_starts_and_stops_its_own_server(tmp_path, stand_in):
    servers = []
    for _ in range(2):
        with spark_server.serving(tmp_path, "local[2]", lambda line: None) as server:
            servers.append(server)
        assert server.process.poll() is not None
    assert len(stand_in) == 2 and servers[0] is not servers[1]


def test_a_full_build_keeps_the_metastore_the_run_s_server_made(tmp_path, stand_in):
    with spark_server.one_spark_per_run(tmp_path):
        with spark_server.serving(tmp_path, "local[2]", lambda line: None) as server:
            (tmp_path / "metastore_db").mkdir()  # (made by the server, at the run's first command)
        assert spark_server.keeps_metastore_for_full_build(tmp_path, lambda line: None) is True
        assert server.process.poll() is None


def test_a_full_build_stops_a_server_whose_metastore_was_there_before_it(tmp_path, stand_in):
    (tmp_path / "metastore_db").mkdir()  # (an earlier run's, naming its tables)
    with spark_server.one_spark_per_run(tmp_path):
        with spark_server.serving(tmp_path, "local[2]", lambda line: None) as server:
            pass
        assert spark_server.keeps_metastore_for_full_build(tmp_path, lambda line: None) is False
        assert server.process.poll() is not None
        with spark_server.serving(tmp_path, "local[2]", lambda line: None) as again:  # (the build's command)
            assert again is not server
    assert len(stand_in) == 2


def test_without_a_server_of_the_run_a_full_build_forgets_the_metastore(tmp_path):
    assert spark_server.keeps_metastore_for_full_build(tmp_path, lambda line: None) is False


def test_a_server_that_does_not_start_fails_the_command_with_the_end_of_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(spark_server, "server_command", lambda home, master, settings, port: [
        sys.executable, "-c", "print('Exception in thread main: java.net.BindException: Address already in use')"])
    monkeypatch.setattr(spark_server, "_spark_home", lambda: Path("/nonexistent"))
    with pytest.raises(RuntimeError, match=r"did not start(.|\n)*BindException: Address already in use"):
        with spark_server.serving(tmp_path, "local[2]", lambda line: None):
            pass
    assert not (tmp_path / spark_server.RECORD).exists()
    assert tmp_path not in spark_server._running


def _stoppable() -> None:
    """As the run starts its server: SIGTERM neither blocked nor ignored (a test worker may pass
    either on)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _leftover(tmp_path: Path, *markers: str) -> subprocess.Popen:
    """A process as a killed run leaves it (recorded under `tmp_path`), with these command-line markers."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", *markers],
                               preexec_fn=_stoppable)
    deadline = time.monotonic() + 30  # (until the child runs its own command line, not a copy of ours)
    while markers[0].encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "connect").mkdir(exist_ok=True)
    (tmp_path / spark_server.RECORD).write_text(f'{{"pid": {process.pid}, "port": 1}}\n')
    return process


def test_a_server_left_by_a_killed_run_is_stopped_before_the_next_starts(tmp_path, stand_in):
    marker = f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={tmp_path}/metastore_db;create=true"
    left = _leftover(tmp_path, spark_server.SERVER_CLASS, marker)
    try:
        with spark_server.serving(tmp_path, "local[2]", lambda line: None):
            assert left.wait(10) == -signal.SIGTERM
    finally:
        left.kill()


def test_a_recorded_pid_that_is_not_this_folder_s_server_is_left_alone(tmp_path):
    other = tmp_path.parent / "another.duckdb.spark"
    marker = f"spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={other}/metastore_db;create=true"
    stranger = _leftover(tmp_path, spark_server.SERVER_CLASS, marker)
    try:
        assert spark_server.stop_leftover(tmp_path) is False
        time.sleep(0.2)
        assert stranger.poll() is None
        assert not (tmp_path / spark_server.RECORD).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_the_server_dies_with_the_process_that_started_it(tmp_path):
    """A run killed outright (SIGKILL) takes its server with it: Linux's parent-death signal, which
    the server gets even where the run had SIGTERM blocked and ignored (as a test worker once
    passed it on)."""
    script = (
        "import signal, sys; from pathlib import Path; from dagster_project import spark_server\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"spark_server.server_command = lambda home, master, settings, port: [sys.executable, '-c', {LISTENER!r}, str(port)]\n"
        "spark_server._spark_home = lambda: Path('/nonexistent')\n"
        f"server = spark_server.start(Path({str(tmp_path)!r}), 'local[2]', print)\n"
        "print('pid', server.process.pid, flush=True)\n"
        "import time; time.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pid = next(int(line.split()[1]) for line in run.stdout if line.startswith("pid "))
        assert _alive(pid)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        run.kill()


def test_another_program_on_the_port_is_not_taken_for_the_server(tmp_path, stand_in, monkeypatch):
    """The free port found may be bound by someone else before the server binds it: that listener
    is not the server (which fails to bind and exits), and the next port is tried."""
    taker = subprocess.Popen([sys.executable, "-c", LISTENER, "0"])  # (listens on a port of its own)
    try:
        deadline = time.monotonic() + 30
        while not (taken := _listening_port(taker.pid)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ports = iter([taken, spark_server._free_port()])
        monkeypatch.setattr(spark_server, "_free_port", lambda: next(ports))
        with spark_server.serving(tmp_path, "local[2]", lambda line: None) as server:
            assert stand_in == [taken, server.port] and server.port != taken
            assert spark_server._listens_on(server.process.pid, server.port)
            assert not spark_server._listens_on(server.process.pid, taken)
    finally:
        taker.kill()
        taker.wait()


def _listening_port(pid: int) -> int | None:
    """The TCP port process `pid` listens on, if any (found as the server's own is)."""
    for port in _ports_listened():
        if spark_server._listens_on(pid, port):
            return port
    return None


def _ports_listened() -> set[int]:
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return {int(row.split()[1].rsplit(":", 1)[1], 16) for row in rows if row.split()[3] == "0A"}


def test_a_server_that_died_is_replaced_by_the_next_command_which_says_why(tmp_path, stand_in):
    """The next command starts another server, and the run's log says the first one died and how
    (here SIGKILL, as the kernel's out-of-memory killer sends it)."""
    lines = []
    with spark_server.one_spark_per_run(tmp_path):
        with spark_server.serving(tmp_path, "local[2]", lines.append) as first:
            pass
        first.process.kill()
        first.process.wait()
        del lines[:]
        with spark_server.serving(tmp_path, "local[2]", lines.append) as second:
            assert second is not first and second.process.poll() is None
    assert len(stand_in) == 2
    assert lines[0] == (f"the run's Spark (pid {first.process.pid}) ended since its last command, killed by SIGKILL "
                        f"(the kernel's out-of-memory killer, or kill -9): another is started (its log: "
                        f"{tmp_path / spark_server.LOG})")
    assert lines[1].startswith("Spark local[2] started for this run in ")


@pytest.mark.parametrize(("status", "said"), [(-9, "killed by SIGKILL (the kernel's out-of-memory killer, or kill -9)"),
                                             (-15, "killed by SIGTERM"), (1, "with exit status 1"),
                                             (-99, "killed by signal 99")])
def test_how_a_server_ended_is_said_from_its_return_code(status, said):
    assert spark_server._ending(status) == said
