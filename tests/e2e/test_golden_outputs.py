"""Every scenario publishes byte for byte what it published before issue #21's rework.

`tests/golden/outputs.json` holds, for each scenario billed twice on one warehouse (a fresh build, then
an incremental run: `tests.golden.digests.RUNS`), the SHA-256 of every output file and of every mart's
rows, recorded at commit 642f2b3 (issue #20's end, with the revenue report's order fixed) (`python -m tests.golden.digests record`;
recorded again for one intended id change, once to add new files only, and once for every_charge_model's percentage charge priced as lago-api prices it, see `tests/golden/digests.py`). Here the same runs are
billed by today's code: the same files, each with the same bytes, and every mart recorded then with
the same rows and columns (a mart added since is allowed; one removed or changed is not).
"""

import json

import pytest

from tests.golden.digests import MANIFEST, RUNS, bill

GOLDEN = json.loads(MANIFEST.read_text())


def _differences(kind: str, recorded: dict[str, str], now: dict[str, str], extra_allowed: bool) -> list[str]:
    missing = sorted(set(recorded) - set(now))
    extra = [] if extra_allowed else sorted(set(now) - set(recorded))
    changed = sorted(name for name in set(recorded) & set(now) if recorded[name] != now[name])
    return ([f"{kind} missing: {name}" for name in missing] + [f"{kind} new: {name}" for name in extra]
            + [f"{kind} changed: {name}" for name in changed])


@pytest.mark.parametrize("scenario", sorted(RUNS))
def test_each_scenario_publishes_what_it_published_before_the_rework(scenario, tmp_path):
    states = bill(scenario, tmp_path)
    assert list(states) == list(GOLDEN[scenario]) == list(RUNS[scenario])
    for through, state in states.items():
        recorded = GOLDEN[scenario][through]
        differences = (_differences("file", recorded["files"], state["files"], extra_allowed=False)
                       + _differences("mart", recorded["marts"], state["marts"], extra_allowed=True))
        assert not differences, f"{scenario} through {through}:\n" + "\n".join(differences)
