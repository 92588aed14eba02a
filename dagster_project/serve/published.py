"""The outputs the last run published (`OUT/current_usage`, `OUT/invoices`, `OUT/wallets`,
`OUT/wallet_transactions`), held in
memory: reads are answered from the snapshot of the last completed run, never from files a run is
rewriting, and never wait for one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


def _documents(folder: Path, root: str) -> dict[str, object]:
    """The `root` objects of a folder's JSON files, by file name (without `.json`); a file that
    cannot be read (a run killed while publishing: files are renamed into place whole, so this is
    a file of another kind) is left out."""
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found[path.stem] = json.loads(path.read_text(encoding="utf-8"))[root]
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


@dataclass(frozen=True)
class Published:
    """One run's outputs: current usage by external subscription id, invoices by `lago_id` (in
    number order), wallets by `lago_id`, each wallet's transactions (in ledger order) by the
    wallet's `lago_id`."""

    current_usage: dict[str, dict] = field(default_factory=dict)
    invoices: dict[str, dict] = field(default_factory=dict)
    wallets: dict[str, dict] = field(default_factory=dict)
    wallet_transactions: dict[str, list[dict]] = field(default_factory=dict)

    @classmethod
    def read(cls, out_dir: Path) -> Published:
        out_dir = Path(out_dir)
        invoices = sorted(_documents(out_dir / "invoices", "invoice").values(), key=lambda i: (i.get("number") or ""))
        return cls(current_usage=_documents(out_dir / "current_usage", "customer_usage"),
                   invoices={i["lago_id"]: i for i in invoices},
                   wallets={w["lago_id"]: w for w in _documents(out_dir / "wallets", "wallet").values()},
                   wallet_transactions=_documents(out_dir / "wallet_transactions", "wallet_transactions"))
