"""dagster-dbt in the Dagster process without dbt-core, and the dbt nodes a `path:` selection holds.

dbt itself never runs in the Dagster process: each command runs in another (`warm_dbt.py`). Yet
dagster-dbt imports dbt-core wherever it is installed (its contracts, adapters and node types), and
evaluates the assets' selections with dbt's selector: importing the definitions took 2.4-2.7 s
with it, 1.8-1.9 s without. dagster-dbt also works where dbt-core is absent (it is made to run with
dbt Fusion), except that it then evaluates no selection but "every node". So
`import_dagster_dbt()` imports it as where dbt-core is absent, and lets it evaluate the assets'
selections, which are made of `path:` terms only (`defs/dbt.py`), from the manifest, with
`select_by_path()`: the nodes dbt's path method selects, and the tests of any of them, as dbt's
default (eager) indirect selection adds them. A test compares both, on the project's selections.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import PurePosixPath

# The manifest's collections of nodes a selection can hold.
COLLECTIONS = ("nodes", "sources", "exposures", "metrics", "semantic_models", "saved_queries", "unit_tests",
               "functions")
# Nodes a selection also takes when one of their parents is selected (dbt's eager indirect selection).
INDIRECT = ("test.", "unit_test.")


def path_terms(select: str) -> list[PurePosixPath] | None:
    """The paths of a selection made of `path:` terms only (no wildcard), or None."""
    terms = select.split()
    if not terms or not all(t.startswith("path:") for t in terms):
        return None
    paths = [t.removeprefix("path:") for t in terms]
    if any(c in p for p in paths for c in "*?[") or any(not p.strip("/.") for p in paths):
        return None
    return [PurePosixPath(p.rstrip("/")) for p in paths]


def select_by_path(select: str, manifest: Mapping) -> set[str] | None:
    """The unique ids `select` holds in `manifest` (a manifest.json), as dbt selects them: each node
    whose file (`original_file_path`), or the YAML file that documents it (`patch_path`), is one of
    the selection's paths or lies under one; and each test and unit test of any of them. None when
    `select` is not made of `path:` terms only (dbt's selector must then evaluate it)."""
    paths = path_terms(select)
    if paths is None:
        return None
    wanted = set(paths)
    selected = set()
    for collection in COLLECTIONS:
        for unique_id, node in (manifest.get(collection) or {}).items():
            file = PurePosixPath(node["original_file_path"])
            patch = node.get("patch_path")
            if (file in wanted or any(parent in wanted for parent in file.parents)
                    or (patch and PurePosixPath(patch.split("://", 1)[-1]) in wanted)):
                selected.add(unique_id)
    children = manifest.get("child_map") or {}
    return selected | {child for unique_id in selected for child in children.get(unique_id, ())
                       if child.startswith(INDIRECT)}


def import_dagster_dbt() -> None:
    """Import dagster-dbt as where dbt-core is absent (unless this process imported it already),
    and let it evaluate `path:` selections with `select_by_path()` (others with dbt's selector,
    which then needs dbt-core)."""
    if "dagster_dbt" not in sys.modules:
        hidden = sys.modules.get("dbt.version")
        sys.modules["dbt.version"] = None  # (importing it fails: dagster-dbt takes dbt-core for absent)
        try:
            import dagster_dbt  # noqa: F401
        finally:
            if hidden is None:
                del sys.modules["dbt.version"]
            else:
                sys.modules["dbt.version"] = hidden
    import dagster_dbt.asset_utils as asset_utils

    original = asset_utils.select_unique_ids
    if getattr(original, "by_path", False):
        return

    def select_unique_ids(select, exclude, selector, project, manifest_json):
        found = None if exclude or selector else select_by_path(select, manifest_json)
        if found is not None:
            return found
        return original(select=select, exclude=exclude, selector=selector, project=project,
                        manifest_json=manifest_json)

    select_unique_ids.by_path = True
    asset_utils.select_unique_ids = select_unique_ids
