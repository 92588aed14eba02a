"""A warm dbt: one process imports dbt once and forks a child for each dbt command.

dagster-dbt runs every dbt command as a new process (`dbt build ...`, twice in each `meterhouse
run`), and each of them spends 2.5-3 s of CPU importing dbt before it does anything. `serve`
imports dbt's command line once, then forks, for each connection, a child that runs the command as
the `dbt` executable would (same arguments, environment and working directory, `cli()` of
`dbt.cli.main`), and streams its output and exit status back. `client` is the executable
dagster-dbt runs (`meterhouse-dbt`, see `defs/dbt.py`): it goes through the server named by
METERHOUSE_DBT_SERVER and, when there is none or it does not answer, runs dbt itself (dbt's
`cli()`, as the installed `dbt` would), so a Dagster UI run or a test without the server behaves
as before.

`warm_dbt()` starts a server for the length of a block (`meterhouse run` and the tests' runs wrap
the whole pipeline in it), on a socket it binds before starting the server, so no client can come
too early. The server imports dbt's command line only: it starts no thread (the DuckDB module
would), and forking a process with threads is not safe. It stops when its parent closes its
standard input, or dies, and removes the socket's folder as it stops (the parent does too, but a
parent killed by a signal cannot).

Protocol, on a Unix socket: the client sends one JSON line (args, cwd, env); the child answers
`\\0pid:<pid>\\n`, then the command's output (stdout and stderr, as dagster-dbt reads them), then
`\\0exit:<status>\\n`. dbt's output never holds a NUL byte (its JSON logs escape control
characters). SIGINT and SIGTERM sent to the client are passed on to the child.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SERVER_ENV = "METERHOUSE_DBT_SERVER"
SWITCH_ENV = "METERHOUSE_WARM_DBT"  # "0": no warm process
_PID = b"\0pid:"
_EXIT = b"\0exit:"
FOLDER_PREFIX = "meterhouse-dbt-"  # the socket's folder, in the temp directory


def installed_dbt() -> str:
    """The `dbt` executable of this environment."""
    return str(Path(sys.executable).parent / "dbt")


# A Unix socket's path holds at most 107 bytes on Linux (103 on macOS). Under a long TMPDIR (a
# test's temporary folder, some CI runners) binding failed with "AF_UNIX path too long" and every
# `meterhouse run` with it; the socket's folder then goes in /tmp, and failing that dbt runs cold.
MAX_SOCKET_PATH = 107 if sys.platform.startswith("linux") else 103


def socket_folder(bases: tuple[str | None, ...] = (None, "/tmp")) -> str | None:
    """A new folder for the server's socket, in the temp directory (None) or the first of `bases`
    where the socket's path is short enough; None if there is none."""
    for base in bases:
        try:
            folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=base)
        except OSError:
            continue
        if len(os.path.join(folder, "dbt.sock").encode()) <= MAX_SOCKET_PATH:
            return folder
        os.rmdir(folder)
    return None


@contextlib.contextmanager
def warm_dbt() -> Iterator[str | None]:
    """Serve the dbt commands of this process (and its children) from one warm process while the
    block runs; yields the socket path (None where a server is already set, without fork, or
    with METERHOUSE_WARM_DBT=0: every command then starts the installed dbt)."""
    if os.environ.get(SERVER_ENV) or not hasattr(os, "fork") or os.environ.get(SWITCH_ENV) == "0":
        yield None
        return
    folder = socket_folder()
    if folder is None:
        yield None
        return
    path = os.path.join(folder, "dbt.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(16)
        server = subprocess.Popen(
            # (-P: not the working directory first on sys.path, as for the `dbt` script)
            [sys.executable, "-P", "-m", "dagster_project.warm_dbt", str(listener.fileno())],
            stdin=subprocess.PIPE, pass_fds=[listener.fileno()],
        )
    except BaseException:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    listener.close()  # the server holds it now
    os.environ[SERVER_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(SERVER_ENV, None)
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def serve(listener_fd: int) -> None:
    """Accept dbt commands on the listening socket `listener_fd` until standard input closes."""
    listener = socket.socket(fileno=listener_fd)
    path = listener.getsockname()  # <folder made by warm_dbt()>/dbt.sock
    # (a client that connects meanwhile waits in the backlog)
    from dbt.cli.main import cli  # the import this process is for

    prewarm()
    parse_without_warehouse_folder()  # (the children inherit it)
    # What the server holds now (dbt's modules, the caches prewarmed) is shared with each child, and
    # kept out of the children's cyclic collections, whose full ones would walk it again and again.
    gc.collect()
    gc.freeze()

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the children; the parent stops us
    stdin = sys.stdin.fileno()
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([listener, stdin], [], [], 1.0)
        # Children are waited for (not left to the kernel), so that their resource usage (peak
        # memory: bench/run.py) counts in this process's, and so in its parent's.
        children -= _reaped(children)
        if stdin in ready and not os.read(stdin, 4096):
            break
        if listener in ready:
            conn, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _run_child(conn, cli)  # does not return
            children.add(pid)
            conn.close()
    listener.close()
    for pid in children:
        os.waitpid(pid, 0)
    # The parent removes the folder when its block ends; this covers a parent that ended without
    # it (SIGTERM, SIGKILL), which closed our standard input all the same. (Only a folder of
    # `warm_dbt()`'s making.)
    folder = os.path.dirname(path)
    if os.path.basename(folder).startswith(FOLDER_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
    # Ended as a child ends (exit handlers, then out), not by the teardown of every dbt module: the
    # run waits for this process, and the teardown took 0.3 s of each.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# The project's own partial parse (`dbt parse`, `defs/dbt.py`'s `dbt_project()`).
PROJECT_PARSE = Path(__file__).resolve().parents[1] / "dbt_project" / "target" / "partial_parse.msgpack"

# dbt's configuration classes whose JSON schema every command builds to validate dbt_project.yml
# and profiles.yml (mashumaro, cached per process: about 0.2 s a command). Not the DuckDB
# credentials: their module imports duckdb, which starts a thread.
PREWARMED_SCHEMAS = {
    "dbt.contracts.project": ("ProjectFlags", "ProfileConfig", "Project", "PackageConfig", "Configuration"),
    "dbt.contracts.selection": ("SelectorFile",),
}


def prewarm(parse: Path = PROJECT_PARSE) -> None:
    """Fill, before any fork, the caches each dbt command would otherwise fill in its own child.
    Best effort: a dbt without one of these classes, or a project not parsed yet, only loses the
    head start."""
    import importlib
    import inspect

    # dbt-common's behavior flags name the module that made them with `inspect.getmodule`, whose
    # first call in a process maps the file of every module loaded (about 50 ms of each command);
    # mapped here once, a child maps only the modules it imports itself.
    inspect.getmodule(inspect.currentframe())
    for module, names in PREWARMED_SCHEMAS.items():
        try:
            loaded = importlib.import_module(module)
            for name in names:
                getattr(loaded, name).json_schema()
        except (ImportError, AttributeError):
            continue
    # dbt's manifest classes generate their msgpack decoders and dict encoders on first use
    # (mashumaro): about 0.2 s of each command, which reads its partial parse and builds the
    # manifest's flat graph. Generated here, on the project's own parse.
    try:
        from dbt.contracts.graph.manifest import Manifest

        Manifest.from_msgpack(parse.read_bytes()).build_flat_graph()
    except Exception:  # noqa: BLE001 - no parse yet, or another dbt's: the children generate them
        pass


def _reaped(children: set[int]) -> set[int]:
    done = set()
    for pid in children:
        if os.waitpid(pid, os.WNOHANG)[0]:
            done.add(pid)
    return done


def _run_child(conn: socket.socket, cli) -> None:
    """Run one command in this forked child, then end it as the `dbt` process would end: its
    exit handlers run (dbt's multiprocessing objects are released), not the slow teardown of
    every module."""
    try:
        status = _run_command(conn, cli)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, _EXIT + str(status).encode() + b"\n")
    except BaseException:  # noqa: BLE001 - before the command (the client falls back) or a broken socket
        os._exit(1)
    os._exit(0)


def _run_command(conn: socket.socket, cli) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    request = json.loads(_read_line(conn))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    conn.sendall(_PID + str(os.getpid()).encode() + b"\n")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(conn.fileno(), 1)
    os.dup2(conn.fileno(), 2)
    conn.close()
    sys.stdout.reconfigure(line_buffering=True)
    sys.argv = [installed_dbt(), *request["args"]]
    try:
        cli(prog_name="dbt")  # as the `dbt` console script: click ends with SystemExit
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - printed as Python would print an uncaught error in dbt
        import traceback

        traceback.print_exc()
        return 1
    return 0


def parse_without_warehouse_folder() -> None:
    """Let dbt take a parse of the project made for another warehouse of the same name.

    dbt keys its partial parse to the profile's connection keys (`connection_info()`), and on
    DuckDB these hold the warehouse's whole path: a new warehouse threw away every parse made
    before and parsed the whole project (3.4 s on 2 cores, in the first command of each new
    warehouse: of each test's run). What a parse holds depends on the database's name (from the
    path's file name), which stays among the keys; not on its folder, as long as nothing in the
    project reads `target.path` (tests/test_warm_dbt.py checks that none does). So a DuckDB
    profile's path is left out of the keys that dbt hashes and prints (`connection_info()`), in
    this process (the warm server, before it forks, and `client()` where it runs dbt itself), so
    that both key a parse alike; Jinja's `target` (`connection_info(with_aliases=True)`) keeps it.
    Best effort: where dbt's credentials class has no `connection_info`, dbt keys on the path as
    before (a whole parse, no harm)."""
    try:
        from dbt.adapters.contracts.connection import Credentials
    except ImportError:
        return
    info = getattr(Credentials, "connection_info", None)
    if info is None or getattr(info, "without_path", False):
        return

    def connection_info(self, *, with_aliases: bool = False):
        keep_path = with_aliases or self.type != "duckdb"
        return (item for item in info(self, with_aliases=with_aliases) if keep_path or item[0] != "path")

    connection_info.without_path = True
    Credentials.connection_info = connection_info


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    return data


def client() -> None:
    """`meterhouse-dbt ARGS...`: `dbt ARGS...` through the warm server, or the installed dbt."""
    args = sys.argv[1:]
    path = os.environ.get(SERVER_ENV)
    conn = None
    if path:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
            conn.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            conn.close()
            conn = None
    if conn is not None:
        status = _relay(conn)
        if status is not None:
            sys.exit(status)
    # no server, or it ended before starting the command: nothing ran yet. dbt runs here, as its
    # `dbt` console script would (`cli()` of dbt.cli.main), its parses keyed as the server's.
    from dbt.cli.main import cli

    parse_without_warehouse_folder()
    sys.argv = [installed_dbt(), *args]
    cli(prog_name="dbt")


def _relay(conn: socket.socket) -> int | None:
    """Copy the child's output to stdout; its exit status (None if it never started)."""
    out = sys.stdout.buffer
    pending, child = b"", None

    def forward(signum, frame) -> None:
        if child is not None:
            os.kill(child, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        pending += data
        if child is None:
            if b"\n" not in pending:
                continue
            head, pending = pending.split(b"\n", 1)
            child = int(head[len(_PID):])
        cut = pending.rfind(b"\0")  # a status may begin here: held back until the end
        out.write(pending if cut < 0 else pending[:cut])
        pending = b"" if cut < 0 else pending[cut:]
        out.flush()
    if child is None:
        return None
    if pending.startswith(_EXIT):
        # (what follows the status was written after the command, by a process it left behind)
        status, _, rest = pending[len(_EXIT):].partition(b"\n")
        out.write(rest)
        out.flush()
        return int(status)
    out.write(pending)
    out.flush()
    print("meterhouse-dbt: the dbt process ended without an exit status (killed?)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    serve(int(sys.argv[1]))
