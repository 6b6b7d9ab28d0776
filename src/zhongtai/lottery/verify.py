"""Recompute a published draw from its public data alone (`zhongtai lottery verify`)."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhongtai.lottery import rules
from zhongtai.trace import merkle


class DrawDataInvalid(ValueError):
    pass


@dataclass
class Report:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _name, passed, _detail in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))


def load(source: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """The draw data from an http(s) URL or a file."""
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=timeout) as response:  # noqa: S310 - scheme checked
                raw = response.read()
        else:
            raw = Path(source).read_bytes()
    except OSError as exc:
        raise DrawDataInvalid(f"cannot read {source}: {exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DrawDataInvalid(f"{source} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != "zt-lottery-draw/1":
        raise DrawDataInvalid(f"{source} is not lottery draw data (format zt-lottery-draw/1)")
    return data


def verify(data: dict[str, Any]) -> Report:
    """Check the commitment, the entries root, the draw seed and the winners."""
    report = Report()
    try:
        _verify(data, report)
    except (KeyError, TypeError, ValueError) as exc:
        report.add("draw data is well-formed", False, f"{type(exc).__name__}: {exc}")
    return report


def _verify(data: dict[str, Any], report: Report) -> None:
    report.add("algorithm", data["algorithm"] == rules.ALGORITHM, str(data["algorithm"]))
    if data.get("server_seed") is None:
        report.add("server seed revealed", False, "the draw has not taken place yet")
        return
    server_seed = bytes.fromhex(data["server_seed"])
    commitment = hashlib.sha256(server_seed).hexdigest()
    report.add("server seed matches the commitment", commitment == data["server_seed_sha256"], commitment)

    leaf_hashes: list[bytes] = []
    entries: list[rules.DrawEntry] = []
    previous = ""
    in_order = True
    for entry in data["entries"]:
        leaf = rules.encode_leaf(
            entry["entry_id"], entry["product_id"], entry["store_id"], entry["entrant"], entry["excluded_reason"]
        )
        leaf_hash = merkle.leaf_hash(leaf)
        leaf_hashes.append(leaf_hash)
        in_order = in_order and previous < entry["entry_id"]
        previous = entry["entry_id"]
        entries.append(
            rules.DrawEntry(
                entry["entry_id"],
                entry["product_id"],
                entry["store_id"],
                leaf_hash,
                entry["excluded_reason"] is not None,
            )
        )
    report.add("entries are in entry-id order", in_order)
    root = rules.entries_root(leaf_hashes)
    report.add("entries root", root.hex() == data["entries_root"], f"{len(leaf_hashes)} entries, root {root.hex()}")

    seed = rules.draw_seed(server_seed, root, data.get("beacon"))
    report.add("draw seed", seed.hex() == data["draw_seed"], seed.hex())
    stock = {(s["store_id"], s["product_id"]): int(s["quantity"]) for s in data["stock"]}
    expected = {(w.entry_id, w.store_id, w.product_id, w.rank) for w in rules.pick_winners(seed, entries, stock)}
    published = {(w["entry_id"], w["store_id"], w["product_id"], int(w["rank"])) for w in data["winners"]}
    missing, extra = expected - published, published - expected
    detail = (
        f"{len(expected)} winners" if not (missing or extra) else f"{len(missing)} missing, {len(extra)} unexpected"
    )
    report.add("winners", not missing and not extra, detail)
