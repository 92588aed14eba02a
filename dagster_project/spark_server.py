"""One Spark for a whole `meterhouse run --engine spark` on a local master: a Spark Connect server
that the run's first Spark command starts, that its later dbt commands reach, and that is stopped
after the last one.

Each of a run's two dbt commands on Spark (the reading of the landing files, then the usage models)
used to start Spark in its own process (dbt-spark's `session` method) and pay the JVM's start and
warm-up again: about 20 s of a 125 s run of the Mistral example on 2 cores (docs/performance.md,
session 20).

The server is Spark's own, started as `sbin/start-connect-server.sh` starts it (`spark-submit
--class org.apache.spark.sql.connect.service.SparkConnectServer`), but in the foreground of a child
process of the run, which stops it and waits for it. It gets the settings a Spark must have when
it starts (`static_settings`: its metastore and tables under `<warehouse>.spark/`, as a session of
dbt's target `spark` keeps them). It listens on 127.0.0.1 only (a Connect server has no
authentication), on a free port. dbt's target `spark_served` connects to it
(`METERHOUSE_SPARK_CONNECT_URL`); each command's session applies the SQL settings.

The server is recorded in `<warehouse>.spark/connect/server.json`, and its output goes to
`connect/server.log` beside it. A run killed before it could stop its server does not leave it
holding the metastore: the server dies with the run where Linux allows (`PR_SET_PDEATHSIG`), and
the next server started for that warehouse stops a recorded one that is still alive
(`stop_leftover`).

Only `meterhouse run` keeps the server from one command to the next (`one_spark_per_run`). A step
materialized on its own (the Dagster UI) starts a server for each Spark command and stops it
after: one JVM per command, as before.
"""

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
RECORD = Path("connect") / "server.json"
LOG = Path("connect") / "server.log"
START_TIMEOUT_S = 300.0  # (a JVM on a busy 2-core machine; the server is usually up in 6-20 s)
STOP_TIMEOUT_S = 60.0


def shares_one_spark(spark_remote: str | None, master: str) -> bool:
    """Whether a run's dbt commands share one Spark it starts: on a local master (`local`,
    `local[N]`, `local[*]`), or SPARK_REMOTE=local[...]. Not on a cluster's master (each command's
    driver is submitted with PYSPARK_SUBMIT_ARGS, as before) nor with a Connect server elsewhere
    (SPARK_REMOTE=sc://...)."""
    return (spark_remote or master).startswith("local")


def static_settings(spark_dir: Path, driver_memory: str) -> dict[str, str]:
    """The settings a Spark takes only when it starts: the driver's memory, the warehouse folder of
    its tables, its Derby metastore and Derby's log under `spark_dir`, no web UI, and the Hive
    catalog (which keeps the tables' names between runs, as dbt-spark's session enables it).
    dbt_project/profiles.yml's target `spark` has the same (a test compares them)."""
    return {
        "spark.driver.memory": driver_memory,
        "spark.sql.warehouse.dir": f"{spark_dir}/tables",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={spark_dir}/metastore_db;create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.stream.error.file={spark_dir}/derby.log",
        "spark.ui.enabled": "false",
        "spark.sql.catalogImplementation": "hive",
    }


def server_command(spark_home: Path, master: str, settings: dict[str, str], port: int) -> list[str]:
    """The command line of a Spark Connect server of `master` with `settings`, on 127.0.0.1:`port`."""
    command = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS,
               "--name", "Meterhouse Spark Connect server", "--master", master]
    for key, value in {**settings, "spark.connect.grpc.binding.address": "127.0.0.1",
                       "spark.connect.grpc.binding.port": str(port)}.items():
        command += ["--conf", f"{key}={value}"]
    return command


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    made_metastore: bool  # no metastore was there before it: it holds only what this run made

    @property
    def url(self) -> str:
        return f"sc://127.0.0.1:{self.port}"


_running: dict[Path, Server] = {}  # the servers this process started, by Spark folder
_kept_for_run: set[Path] = set()  # Spark folders whose server serves every command of the run


@contextlib.contextmanager
def one_spark_per_run(spark_dir: Path) -> Iterator[None]:
    """Within it (`meterhouse run`), the server a Spark command of `spark_dir` starts serves the
    later ones too; it is stopped at the end, if no command stopped it before."""
    _kept_for_run.add(spark_dir)
    try:
        yield
    finally:
        _kept_for_run.discard(spark_dir)
        stop(spark_dir)


@contextlib.contextmanager
def serving(spark_dir: Path, master: str, log: Callable[[str], None], last: bool = False) -> Iterator[Server]:
    """The Spark Connect server of `spark_dir` for one command: the run's (started now if it has
    none yet). Stopped after the command if it is the run's `last`, or outside `one_spark_per_run`."""
    server = _live(spark_dir, log) or start(spark_dir, master, log)
    try:
        yield server
    finally:
        if last or spark_dir not in _kept_for_run:
            stop(spark_dir, log)


def keeps_metastore_for_full_build(spark_dir: Path, log: Callable[[str], None]) -> bool:
    """Before a full build forgets what Spark holds for `spark_dir`: whether its metastore must
    stay, held open by the run's server, which made it (a new warehouse: it names no table of an
    earlier run). A server whose metastore was there before it is stopped first, so that the
    metastore can go with the tables it names; the build's command starts another."""
    server = _live(spark_dir, log)
    if server is not None and not server.made_metastore:
        stop(spark_dir, log)
        return False
    return server is not None


def _live(spark_dir: Path, log: Callable[[str], None]) -> Server | None:
    """The server this process started for `spark_dir`, if it still runs. One that ended (killed by
    the kernel for memory, or crashed) is forgotten, and `log` says so: the next command starts
    another."""
    server = _running.get(spark_dir)
    if server is not None and (status := server.process.poll()) is not None:
        stop(spark_dir)
        log(f"the run's Spark (pid {server.process.pid}) ended since its last command, {_ending(status)}: "
            f"another is started (its log: {spark_dir / LOG})")
        return None
    return server


def _ending(status: int) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"killed by {name}" + (" (the kernel's out-of-memory killer, or kill -9)" if name == "SIGKILL" else "")
    return f"with exit status {status}"


def start(spark_dir: Path, master: str, log: Callable[[str], None], settings: dict[str, str] | None = None) -> Server:
    """Start a Spark Connect server of `master` for `spark_dir` and wait until it listens: with the
    `static_settings` of a run's own Spark, or the `settings` given (the tests' server elsewhere,
    in a folder of its own: `stop_leftover` knows a server by its metastore's path in
    `static_settings`, so it would not find such a server left behind)."""
    stop_leftover(spark_dir)
    (spark_dir / LOG).parent.mkdir(parents=True, exist_ok=True)
    made_metastore = not (spark_dir / "metastore_db").exists()
    if settings is None:
        settings = static_settings(spark_dir, os.environ.get("METERHOUSE_SPARK_DRIVER_MEMORY", "2g"))
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}
    env["SPARK_CONNECT_MODE"] = "0"  # (as start-connect-server.sh sets it: a server, not a client)
    began = time.monotonic()
    for _ in range(3):  # (the free port found may be taken before the server binds it)
        port = _free_port()
        with open(spark_dir / LOG, "ab") as output:
            process = subprocess.Popen(server_command(_spark_home(), master, settings, port), cwd=spark_dir,
                                       env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       preexec_fn=_stoppable_child())
        _record(spark_dir, process.pid, port)
        if _listening(process, port, began + START_TIMEOUT_S):
            server = _running[spark_dir] = Server(process, port, made_metastore)
            log(f"Spark {master} started for this run in {time.monotonic() - began:.1f} s: a Spark Connect "
                f"server on 127.0.0.1:{port}, pid {process.pid} (its log: {spark_dir / LOG})")
            return server
        _end(process)
        (spark_dir / RECORD).unlink(missing_ok=True)
        if time.monotonic() > began + START_TIMEOUT_S:
            break
    raise RuntimeError(f"the Spark Connect server for {spark_dir} did not start (its log, {spark_dir / LOG}, "
                       f"ends with):\n{_tail(spark_dir / LOG)}")


def stop(spark_dir: Path, log: Callable[[str], None] | None = None) -> None:
    """Stop the server this process started for `spark_dir`, if it runs, and wait until its JVM has
    exited (it holds the Derby metastore, which no other Spark can open meanwhile)."""
    server = _running.pop(spark_dir, None)
    if server is None:
        return
    peak = _peak_rss(server.process.pid)
    _end(server.process)
    (spark_dir / RECORD).unlink(missing_ok=True)
    if log is not None:
        log("the run's Spark stopped" + (f"; its peak RSS {peak / 2**30:.2f} GiB" if peak else ""))


def stop_leftover(spark_dir: Path) -> bool:
    """Stop the server recorded for `spark_dir` by a run that could not stop it (killed), if it
    still runs: the process of the recorded pid, if it is a Spark Connect server of that folder.
    Whether there was one."""
    record = spark_dir / RECORD
    try:
        pid = json.loads(record.read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return False
    found = _is_server_of(pid, spark_dir)
    if found:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _is_server_of(pid, spark_dir):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
    record.unlink(missing_ok=True)
    return found


def _is_server_of(pid: int, spark_dir: Path) -> bool:
    """Whether process `pid` is alive and a Spark Connect server with its metastore in `spark_dir`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:")]
    except OSError:
        return False
    if state and state[0].split()[1] == "Z":  # (exited; its parent has not waited for it yet)
        return False
    metastore = f"databaseName={spark_dir}/metastore_db;".encode()
    return SERVER_CLASS.encode() in argv and any(metastore in arg for arg in argv)


def _record(spark_dir: Path, pid: int, port: int) -> None:
    (spark_dir / RECORD).write_text(json.dumps({"pid": pid, "port": port}) + "\n")


def _listening(process: subprocess.Popen, port: int, deadline: float) -> bool:
    """Wait until the server listens on `port` (True), or has exited, or `deadline` (a
    `time.monotonic()`) has passed (False). The listening socket must be the server's own: another
    program that took the port meanwhile (the free port found is free only until someone binds it)
    is not mistaken for it, and the server, unable to bind, exits."""
    while process.poll() is None and time.monotonic() < deadline:
        if _listens_on(process.pid, port):
            return True
        time.sleep(0.2)
    return False


def _listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a socket listening on TCP `port` (Linux's /proc/net/tcp[6]: the
    listening sockets' inodes, against the process's open descriptors)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # (sl, local address:port in hex, remote, state, ..., inode)
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # (0A: LISTEN)
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for descriptor in descriptors:
        try:
            if os.readlink(descriptor) in inodes:
                return True
        except OSError:
            continue
    return False


def _end(process: subprocess.Popen) -> None:
    """Terminate a server (Spark's shutdown hooks close the metastore) and wait for it; killed if it
    has not exited within STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spark_home() -> Path:
    """SPARK_HOME, or the pyspark package's folder (a pip install ships Spark's `bin/` there)."""
    if home := os.environ.get("SPARK_HOME"):
        return Path(home)
    import pyspark

    return Path(pyspark.__file__).parent


PR_SET_PDEATHSIG = 1


def _stoppable_child() -> Callable[[], None]:
    """The server's `preexec_fn`: SIGTERM, which stops it, is neither blocked nor ignored in it,
    whatever the run inherited (a blocked or ignored SIGTERM passes to the child, and the JVM then
    leaves it so; it was found blocked in a test worker), and Linux sends it SIGTERM when the
    thread that starts it ends. That is the run's main thread (Dagster runs `meterhouse run`'s
    steps in it); from another thread, which may end before the run, or off Linux, only the
    former."""
    main = threading.current_thread() is threading.main_thread()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl if main else None
    except (OSError, AttributeError):
        prctl = None

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return setup


def _peak_rss(pid: int) -> int | None:
    """A process's peak resident memory in bytes (`VmHWM` of /proc/<pid>/status), or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(kib[0]) * 1024 if kib else None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
