"""The draw, as pure functions over public data (algorithm `zt-lottery-v1`). No I/O.

Everything here is what `zhongtai lottery verify` and the standalone script in docs/lottery.md
recompute; change nothing without a new algorithm version.

- Leaf of an entry: the UTF-8 bytes of
  `zt-lottery-v1|<entry_id>|<product_id>|<store_id>|<entrant>|<excluded_reason>` — ids as lower-case
  hyphenated UUIDs, `entrant` the 32-hex-digit pseudonym of the entrant in this session (no personal
  data), `excluded_reason` empty for entries in the draw, else the reason code: the root commits to
  every exclusion.
- Entry list: all frozen entries (excluded ones too) ordered by entry id; the entries root is the
  RFC 9162 Merkle tree hash over their leaves.
- Draw seed: `SHA-256(server_seed ‖ entries_root ‖ beacon)` — 32 raw bytes, 32 raw bytes, the
  beacon's UTF-8 bytes (nothing when there is no beacon).
- Score of an entry: `HMAC-SHA256(key=draw_seed, msg=leaf_hash)` where `leaf_hash` is the RFC 9162
  leaf hash `SHA-256(0x00 ‖ leaf)`.
- Winners: in every (store, product) group, among entries not excluded, the `k = stock` entries with
  the lowest scores (as 256-bit big-endian numbers; equal scores ordered by entry id), ranked 1…k.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zhongtai.trace import merkle

ALGORITHM = "zt-lottery-v1"


def encode_leaf(entry_id: str, product_id: str, store_id: str, entrant: str, excluded_reason: str | None) -> bytes:
    reason = excluded_reason or ""
    for name, value in (("entry_id", entry_id), ("product_id", product_id), ("store_id", store_id), ("reason", reason)):
        if "|" in value:
            raise ValueError(f"{name} must not contain '|'")
    return f"{ALGORITHM}|{entry_id}|{product_id}|{store_id}|{entrant}|{reason}".encode()


def seed_commitment(server_seed: bytes) -> str:
    return hashlib.sha256(server_seed).hexdigest()


def draw_seed(server_seed: bytes, entries_root: bytes, beacon: str | None) -> bytes:
    return hashlib.sha256(server_seed + entries_root + (beacon or "").encode()).digest()


def score(seed: bytes, leaf_hash: bytes) -> bytes:
    return hmac.digest(seed, leaf_hash, "sha256")


@dataclass(frozen=True)
class DrawEntry:
    entry_id: str
    product_id: str
    store_id: str
    leaf_hash: bytes
    excluded: bool = False


@dataclass(frozen=True)
class Winner:
    entry_id: str
    store_id: str
    product_id: str
    rank: int


class WinnerPicker:
    """Streams entries in any order and keeps, per (store, product) group with stock, only the few
    lowest scores seen so far: memory grows with the stock, not with the entries."""

    def __init__(self, seed: bytes, stock: Mapping[tuple[str, str], int]) -> None:
        self.seed = seed
        self.stock = {key: k for key, k in stock.items() if k > 0}
        self.groups: dict[tuple[str, str], list[tuple[bytes, str]]] = defaultdict(list)

    def add(self, entry_id: str, store_id: str, product_id: str, leaf_hash: bytes) -> None:
        key = (store_id, product_id)
        k = self.stock.get(key)
        if k is None:
            return
        group = self.groups[key]
        group.append((hmac.digest(self.seed, leaf_hash, "sha256"), entry_id))
        if len(group) > 2 * k + 64:
            group[:] = heapq.nsmallest(k, group)

    def winners(self) -> list[Winner]:
        """Ordered by store, product, rank."""
        found: list[Winner] = []
        for key in sorted(self.groups):
            chosen = heapq.nsmallest(self.stock[key], self.groups[key])
            found.extend(Winner(entry_id, key[0], key[1], rank) for rank, (_s, entry_id) in enumerate(chosen, 1))
        return found


def pick_winners(seed: bytes, entries: Iterable[DrawEntry], stock: Mapping[tuple[str, str], int]) -> list[Winner]:
    """Winners of every (store, product) group with stock; ordered by store, product, rank."""
    picker = WinnerPicker(seed, stock)
    for entry in entries:
        if not entry.excluded:
            picker.add(entry.entry_id, entry.store_id, entry.product_id, entry.leaf_hash)
    return picker.winners()


class StreamingTree:
    """The RFC 9162 tree hash of leaves added one by one, in O(log n) memory: a stack of perfect
    subtrees (the right edge of the tree). Perfect subtrees at levels ≥ `keep_from_level` are kept
    in `kept` as {(level, index): hash}."""

    def __init__(self, keep_from_level: int | None = None) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []
        self._keep = keep_from_level
        self.kept: dict[tuple[int, int], bytes] = {}

    def add(self, leaf_hash: bytes) -> None:
        level, node = 0, leaf_hash
        index = self.size
        stack = self._stack
        while stack and stack[-1][0] == level:
            node = hashlib.sha256(b"\x01" + stack.pop()[1] + node).digest()
            level += 1
            index >>= 1
            if self._keep is not None and level >= self._keep:
                self.kept[(level, index)] = node
        if self._keep == 0 and level == 0:
            self.kept[(0, index)] = node
        stack.append((level, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return merkle.EMPTY_ROOT
        result = self._stack[-1][1]
        for _level, node in reversed(self._stack[:-1]):
            result = merkle.node_hash(node, result)
        return result


def entries_root(leaf_hashes: Iterable[bytes]) -> bytes:
    """RFC 9162 tree hash of the leaves (same value as `merkle.root_of`, linear time)."""
    tree = StreamingTree()
    for leaf_hash in leaf_hashes:
        tree.add(leaf_hash)
    return tree.root()


def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[bytes]:
    """The RFC 9162 audit path of leaf `index`, computed from all leaves."""
    proof: list[bytes] = []
    for start, end in merkle.inclusion_ranges(index, len(leaf_hashes)):
        proof.append(entries_root(leaf_hashes[start:end]))
    return proof
