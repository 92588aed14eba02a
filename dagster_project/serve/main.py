"""`meterhouse serve`: assemble the stores, the published snapshot, the refresh and the HTTP server."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from dagster_project.serve.catalog_store import CatalogStore
from dagster_project.serve.http import App, make_server
from dagster_project.serve.lago_api import API_KEY_ENV
from dagster_project.serve.landing import EventLog, repair, utc_now
from dagster_project.serve.published import Published
from dagster_project.serve.refresh import Paths, Refresher


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def serve(catalog: Path, events: Path, warehouse: Path, out: Path, host: str, port: int,
          refresh_seconds: float) -> None:
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key:
        raise SystemExit(f"error: set {API_KEY_ENV} to the API key clients send (Authorization: Bearer <key>)")
    for line in repair(events):  # before this server appends anything
        say(f"serve: {line}")
    store = CatalogStore(catalog)
    log = EventLog(events)
    app = App(api_key=api_key, store=store, events=log, clock=utc_now, published=Published.read(out))

    def published(snapshot: Published) -> None:
        app.published = snapshot

    refresher = Refresher(Paths(Path(catalog), Path(events), Path(warehouse), Path(out)), refresh_seconds,
                          changes=lambda: (log.events_appended, store.version), billing_date=log.billing_date,
                          published=published, clock=utc_now, say=say)
    app.poke = refresher.poke
    app.health = lambda: {"refresh": vars(refresher.status)}
    server = make_server(app, host, port)
    stopping = threading.Event()

    def stop(signum, frame) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    refresher.start()
    say(f"serve: listening on http://{host}:{server.server_address[1]}/ (events appended to "
        f"{events}/<UTC date>/{log.file_name}; billing refreshed at most every {refresh_seconds:g} s)")
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        refresher.stop()
        server.server_close()
        log.close()
        say("serve: stopped")
