"""dagster-dbt in the Dagster process without dbt-core (`dagster_project/dbt_selection.py`): the
nodes a `path:` selection holds, counted by hand on a small manifest and compared with dbt's own
selector on the project's; the same definitions either way, and no dbt module imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dagster_project.dbt_selection import select_by_path
from tests.conftest import REPO

MANIFEST = {
    "nodes": {
        "model.p.a": {"original_file_path": "models/staging/a.sql", "patch_path": "p://models/staging/_a.yml"},
        "model.p.b": {"original_file_path": "models/marts/b.sql", "patch_path": "p://models/staging/_a.yml"},
        "model.p.c": {"original_file_path": "models/marts_old/c.sql", "patch_path": None},
        "seed.p.s": {"original_file_path": "seeds/s.csv", "patch_path": "p://seeds/_seeds.yml"},
        "test.p.not_null_a": {"original_file_path": "models/staging/_a.yml"},
        "test.p.on_b": {"original_file_path": "models/marts/_b.yml"},
        "test.p.on_c": {"original_file_path": "models/marts_old/_c.yml"},
        "test.p.singular": {"original_file_path": "tests/singular.sql"},
    },
    "sources": {"source.p.raw.e": {"original_file_path": "models/staging/_sources.yml"}},
    "unit_tests": {"unit_test.p.b.u": {"original_file_path": "models/marts/_b.yml"}},
    "child_map": {
        "model.p.a": ["model.p.b", "test.p.not_null_a"],
        "model.p.b": ["test.p.on_b", "unit_test.p.b.u"],
        "model.p.c": ["test.p.on_c"],
        "source.p.raw.e": ["model.p.a"],
    },
}


def test_a_folder_selects_what_lies_under_it_and_the_tests_of_any_of_it():
    # a, and the staging YAML's test and source, by their files; not b, which that YAML documents
    # (dbt matches a node's YAML only when the selection names the file itself)
    assert select_by_path("path:models/staging", MANIFEST) == {"model.p.a", "test.p.not_null_a", "source.p.raw.e"}


def test_a_yaml_file_selects_the_models_it_documents_and_their_tests():
    # a and b by the YAML documenting them (patch_path), its test by its file, and b's test and
    # unit test as b's children
    assert select_by_path("path:models/staging/_a.yml", MANIFEST) == {
        "model.p.a", "model.p.b", "test.p.not_null_a", "test.p.on_b", "unit_test.p.b.u"}


def test_a_folder_is_matched_as_a_folder_not_as_the_start_of_a_name_and_terms_add_up():
    assert select_by_path("path:models/marts", MANIFEST) == {"model.p.b", "test.p.on_b", "unit_test.p.b.u"}
    assert select_by_path("path:models/marts_old/ path:tests", MANIFEST) == {"model.p.c", "test.p.on_c", "test.p.singular"}
    assert select_by_path("path:seeds/s.csv", MANIFEST) == {"seed.p.s"}


def test_any_other_selection_is_left_to_dbt_s_selector():
    assert select_by_path("path:models/staging tag:x", MANIFEST) is None
    assert select_by_path("path:models/*", MANIFEST) is None
    assert select_by_path("fqn:*", MANIFEST) is None
    assert select_by_path("", MANIFEST) is None


# In a new process: dagster-dbt imported with dbt-core, as any other program would; or through
# `dagster_project.defs`, without. Prints the asset and check keys of every assets definition, the
# nodes of the project's selections by dbt's selector (with dbt-core only), and the dbt modules loaded.
SCRIPT = """
import json, sys
with_core = sys.argv[1] == "with"
if with_core:
    import dagster_dbt
from dagster_project.definitions import build_definitions
from dagster_project.defs.dbt import BILLING_MARTS, USAGE_MODELS, dbt_project
definitions = {a.node_def.name if a.is_executable else str(a.key): [sorted(map(str, a.keys)), sorted(map(str, a.check_keys))]
               for a in build_definitions().assets}
selections = {}
if with_core:
    from dagster_dbt.utils import _select_unique_ids_from_manifest
    manifest = json.loads(dbt_project().manifest_path.read_text())
    selections = {s: sorted(_select_unique_ids_from_manifest(s, "", "", manifest, dbt_project()))
                  for s in (USAGE_MODELS, BILLING_MARTS, "path:models/staging", "path:models/marts/billing/_billing__models.yml")}
print(json.dumps({"definitions": definitions, "selections": selections,
                  "dbt_modules": sorted(m for m in sys.modules if m == "dbt" or m.startswith("dbt."))}))
"""


@pytest.fixture(scope="module")
def both_ways():
    def run(way):
        result = subprocess.run([sys.executable, "-W", "ignore", "-c", SCRIPT, way], capture_output=True, text=True,
                                cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.splitlines()[-1])
    return run("with"), run("without")


def test_the_project_s_selections_hold_the_nodes_dbt_s_selector_finds(both_ways):
    with_core, _ = both_ways
    from dagster_project.defs.dbt import dbt_project

    manifest = json.loads(dbt_project().manifest_path.read_text())
    assert with_core["selections"]
    for select, nodes in with_core["selections"].items():
        assert sorted(select_by_path(select, manifest)) == nodes, select


def test_the_dagster_process_imports_no_dbt_module_and_has_the_same_assets_and_checks(both_ways):
    with_core, without = both_ways
    assert with_core["dbt_modules"] and not without["dbt_modules"]
    assert without["definitions"] == with_core["definitions"]
    assert len(without["definitions"]["usage_models"][1]) == 29  # (the usage models' dbt tests, as checks)
