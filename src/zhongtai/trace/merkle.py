"""RFC 9162 §2.1 Merkle tree hashing, proofs and their verification — pure functions, no I/O.

Leaf hash `SHA-256(0x00 ‖ entry)`, interior node `SHA-256(0x01 ‖ left ‖ right)`, the empty tree's
hash `SHA-256("")`. The tree over n leaves splits at k, the largest power of two smaller than n.

Proofs are generated from stored *perfect* subtrees: node `(level, index)` is the hash of the
`2**level` leaves `index * 2**level … (index + 1) * 2**level - 1`, and it never changes once the log
has that many leaves. Every subtree hash a proof needs — also the ragged ones at the right edge of
the tree — is a fold of a few such nodes, so generation is: list the ranges (`inclusion_ranges`,
`consistency_ranges`), list their perfect nodes (`range_nodes`), fetch those in one query, fold
(`range_hash`). The log (`trace.log`) does exactly that; `MemoryTree` does it in memory for tests.

The verification functions follow RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]  # (level, index): a perfect subtree of 2**level leaves


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of already-hashed leaves, by the recursive definition (for tests and small trees)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = split_point(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


# Proof generation in terms of leaf ranges [start, end).


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PATH(index, D[size]), in proof order (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start = start + k
    ranges.reverse()  # the recursion appends on the way back up: deepest sibling first
    return ranges


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(first, D[second]) (RFC 9162 §2.1.4.1).

    Empty when first is 0 or first equals second: there is nothing to prove.
    """
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, second, first, True  # SUBPROOF(m, D[start:end], whole)
    while True:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            break
        k = split_point(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    ranges.reverse()
    return ranges


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees that make up MTH(D[start:end]), left to right.

    `start` must be aligned as in the tree's own recursion (true for every range above and for
    [0, size)); the hash is then the right fold of these nodes (`range_hash`).
    """
    if not 0 <= start < end:
        raise ValueError(f"empty or negative leaf range [{start}, {end})")
    nodes: list[NodeId] = []
    while start < end:
        n = end - start
        width = n if n & (n - 1) == 0 else split_point(n)
        level = width.bit_length() - 1
        if start % width:
            raise ValueError(f"leaf range [{start}, {end}) is not a subtree of the tree")
        nodes.append((level, start >> level))
        start += width
    return nodes


def range_hash(start: int, end: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    parts = [nodes[node] for node in range_nodes(start, end)]
    result = parts[-1]
    for part in reversed(parts[:-1]):
        result = node_hash(part, result)
    return result


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[NodeId]:
    return {node for start, end in ranges for node in range_nodes(start, end)}


def root_nodes(size: int) -> list[NodeId]:
    return range_nodes(0, size) if size else []


def root_from_nodes(size: int, nodes: Mapping[NodeId, bytes]) -> bytes:
    return range_hash(0, size, nodes) if size else EMPTY_ROOT


def new_nodes(old_size: int, new_size: int) -> list[NodeId]:
    """Every perfect subtree completed by growing the tree from old_size to new_size leaves, by level."""
    created: list[NodeId] = []
    level = 0
    while (new_size >> level) > 0:
        created.extend((level, index) for index in range(old_size >> level, new_size >> level))
        level += 1
    return created


def build_nodes(old_size: int, new_leaves: Sequence[bytes], frontier: Mapping[NodeId, bytes]) -> dict[NodeId, bytes]:
    """Hashes of every node completed by appending `new_leaves` (already leaf-hashed) to a tree of
    `old_size` leaves. `frontier` holds the old tree's `root_nodes(old_size)` — all that is needed
    of it, so appending costs O(len(new_leaves) + log n)."""
    known: dict[NodeId, bytes] = dict(frontier)
    created: dict[NodeId, bytes] = {}
    for offset, hashed in enumerate(new_leaves):
        created[(0, old_size + offset)] = hashed
    known.update(created)
    new_size = old_size + len(new_leaves)
    for level, index in new_nodes(old_size, new_size):
        if level == 0:
            continue
        value = node_hash(known[(level - 1, 2 * index)], known[(level - 1, 2 * index + 1)])
        known[(level, index)] = created[(level, index)] = value
    return created


# Verification, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2.


def verify_inclusion(
    hashed_leaf: bytes, leaf_index: int, tree_size: int, inclusion_path: Sequence[bytes], root_hash: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does `inclusion_path` prove the leaf at `leaf_index` in the tree with `root_hash`?"""
    if leaf_index < 0 or leaf_index >= tree_size:  # step 1
        return False
    if any(len(p) != HASH_SIZE for p in inclusion_path) or len(hashed_leaf) != HASH_SIZE:
        return False
    fn, sn = leaf_index, tree_size - 1  # step 2
    r = hashed_leaf  # step 3
    for p in inclusion_path:  # step 4
        if sn == 0:  # 4a
            return False
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    return sn == 0 and r == root_hash  # step 5


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, consistency_path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2 for 0 < first < second; a tree is consistent with itself (equal roots, empty
    proof) and the empty tree with every tree (empty proof)."""
    if any(len(c) != HASH_SIZE for c in consistency_path):
        return False
    if first < 0 or first > second:
        return False
    if first == second:
        return not consistency_path and first_hash == second_hash
    if first == 0:
        return not consistency_path and first_hash == EMPTY_ROOT
    if not consistency_path:  # step 1
        return False
    path = list(consistency_path)
    if first & (first - 1) == 0:  # step 2
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6a
            return False
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0  # step 7


class MemoryTree:
    """An in-memory log built the same way as the stored one (perfect nodes, folded ranges)."""

    def __init__(self, entries: Iterable[bytes] = ()) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.size = 0
        self.append(list(entries))

    def append(self, entries: Sequence[bytes]) -> int:
        first = self.size
        frontier = {node: self.nodes[node] for node in root_nodes(self.size)}
        self.nodes.update(build_nodes(self.size, [leaf_hash(e) for e in entries], frontier))
        self.size += len(entries)
        return first

    def root(self, size: int | None = None) -> bytes:
        return root_from_nodes(self.size if size is None else size, self.nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return [range_hash(s, e, self.nodes) for s, e in inclusion_ranges(index, self.size if size is None else size)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        return [
            range_hash(s, e, self.nodes) for s, e in consistency_ranges(first, self.size if second is None else second)
        ]
