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


def pick_winners(seed: bytes, entries: Iterable[DrawEntry], stock: Mapping[tuple[str, str], int]) -> list[Winner]:
    """Winners of every (store, product) group with stock; ordered by store, product, rank."""
    groups: dict[tuple[str, str], list[tuple[bytes, str]]] = defaultdict(list)
    for entry in entries:
        if entry.excluded:
            continue
        key = (entry.store_id, entry.product_id)
        if stock.get(key, 0) > 0:
            groups[key].append((score(seed, entry.leaf_hash), entry.entry_id))
    winners: list[Winner] = []
    for key in sorted(groups):
        k = stock[key]
        chosen = heapq.nsmallest(k, groups[key])
        winners.extend(Winner(entry_id, key[0], key[1], rank) for rank, (_s, entry_id) in enumerate(chosen, 1))
    return winners


def entries_root(leaf_hashes: list[bytes]) -> bytes:
    """RFC 9162 tree hash of the leaves, bottom-up (same value as `merkle.root_of`, linear time)."""
    if not leaf_hashes:
        return merkle.EMPTY_ROOT
    level = leaf_hashes
    # Building pairwise from the left gives the RFC 9162 tree: an odd last node is promoted as is.
    while len(level) > 1:
        nxt = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaf_hashes: list[bytes], index: int) -> list[bytes]:
    """The RFC 9162 audit path of leaf `index`, computed from all leaves."""
    proof: list[bytes] = []
    for start, end in merkle.inclusion_ranges(index, len(leaf_hashes)):
        proof.append(entries_root(leaf_hashes[start:end]))
    return proof
