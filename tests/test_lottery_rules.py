"""The draw's pure rules: the entries root is RFC 9162's, proofs verify, winners are uniform."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from zhongtai.lottery import rules
from zhongtai.trace import merkle

# χ² critical value for 9 degrees of freedom at p = 0.001 (any statistics table: 27.877).
CHI2_9DF_P001 = 27.877


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"leaf {i}".encode()) for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 100, 1025])
def test_entries_root_and_proofs_follow_rfc_9162(n: int) -> None:
    leaves = _leaves(n)
    root = rules.entries_root(leaves)
    assert root == merkle.root_of(leaves)
    for index in {0, n // 2, n - 1}:
        proof = rules.inclusion_proof(leaves, index)
        assert merkle.verify_inclusion(leaves[index], index, n, proof, root)
        assert not merkle.verify_inclusion(leaves[index], (index + 1) % n, n, proof, root) or n == 1


def test_stored_levels_are_the_perfect_subtrees() -> None:
    leaves = _leaves(5000)
    tree = rules.StreamingTree(keep_from_level=10)
    for leaf in leaves:
        tree.add(leaf)
    assert tree.root() == merkle.root_of(leaves)
    nodes = tree.kept
    assert sorted(nodes) == [(10, 0), (10, 1), (10, 2), (10, 3), (11, 0), (11, 1), (12, 0)]
    assert nodes[(11, 1)] == merkle.root_of(leaves[2048:4096])
    assert nodes[(12, 0)] == merkle.root_of(leaves[:4096])


def test_leaf_encoding_is_exact() -> None:
    entry = "01a20000-0000-7000-8000-000000000001"
    assert rules.encode_leaf(entry, "p", "s", "ab" * 16, None) == f"zt-lottery-v1|{entry}|p|s|{'ab' * 16}|".encode()
    assert rules.encode_leaf(entry, "p", "s", "e", "not_verified").endswith(b"|e|not_verified")
    with pytest.raises(ValueError, match="store_id"):
        rules.encode_leaf(entry, "p", "s|x", "e", None)


def test_draw_is_deterministic_and_respects_stock_and_exclusions() -> None:
    entries = [
        rules.DrawEntry(str(uuid.UUID(int=i)), "p", "s1" if i % 2 else "s2", merkle.leaf_hash(bytes([i])), i == 3)
        for i in range(10)
    ]
    stock = {("s1", "p"): 2, ("s2", "p"): 10, ("s3", "p"): 4}
    seed = rules.draw_seed(b"\x01" * 32, rules.entries_root([e.leaf_hash for e in entries]), "beacon")
    first = rules.pick_winners(seed, entries, stock)
    assert first == rules.pick_winners(seed, list(reversed(entries)), stock)
    by_store = {store: [w for w in first if w.store_id == store] for store in ("s1", "s2")}
    assert [w.rank for w in by_store["s1"]] == [1, 2]
    assert len(by_store["s2"]) == 5, "fewer entries than stock: all of them win"
    assert str(uuid.UUID(int=3)) not in {w.entry_id for w in first}


def test_winning_positions_are_uniform() -> None:
    """2,000 draws of 2 winners among 10 entries: each position wins 400 times in expectation."""
    entries = [rules.DrawEntry(f"e{i}", "p", "s", merkle.leaf_hash(f"entry {i}".encode())) for i in range(10)]
    wins = [0] * 10
    for draw in range(2000):
        seed = hashlib.sha256(f"draw {draw}".encode()).digest()
        for winner in rules.pick_winners(seed, entries, {("s", "p"): 2}):
            wins[int(winner.entry_id[1:])] += 1
    assert sum(wins) == 4000
    expected = 4000 / 10
    chi2 = sum((observed - expected) ** 2 / expected for observed in wins)
    assert chi2 < CHI2_9DF_P001, (chi2, wins)
