"""`meterhouse serve`: Lago's HTTP API in front of the folders `meterhouse run` reads and writes.

- `lago_api.py`: the rules, as pure functions (authentication, Lago's error bodies, the checks of an
  event body, the objects a response holds);
- `landing.py`: events appended durably to the landing folder;
- `catalog_store.py`: catalog bodies written as files into the catalog folder, checked as the run
  checks them;
- `published.py`: the last published outputs, held in memory for reads;
- `refresh.py`: the incremental billing run in the background;
- `http.py`: the HTTP wiring (the standard library's threading server).
"""
