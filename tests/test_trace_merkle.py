"""RFC 9162 Merkle tree: known-answer vectors and properties of every proof.

The vectors are the Certificate Transparency test data (RFC 6962's 8-leaf tree), as published in
transparency-dev/merkle `proof/verify_test.go` (Apache-2.0; inherited from google/certificate-transparency):
the eight leaf inputs, the roots of sizes 1–8, and inclusion and consistency proofs. Their leaf
numbers there are 1-based; ours are 0-based indexes.
"""

from __future__ import annotations

import pytest

from zhongtai.trace import merkle

LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657")] + [
    bytes.fromhex("606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# (0-based leaf index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first, second, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _root(size: int) -> bytes:
    return bytes.fromhex(ROOTS[size - 1])


def test_empty_tree_and_published_roots() -> None:
    tree = merkle.MemoryTree(LEAVES)
    assert merkle.EMPTY_ROOT.hex() == EMPTY
    assert merkle.MemoryTree().root() == merkle.EMPTY_ROOT
    for size in range(1, 9):
        assert tree.root(size).hex() == ROOTS[size - 1], size
        assert merkle.root_of([merkle.leaf_hash(e) for e in LEAVES[:size]]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    tree = merkle.MemoryTree(LEAVES)
    expected = [bytes.fromhex(p) for p in proof]
    assert tree.inclusion_proof(index, size) == expected
    leaf = merkle.leaf_hash(LEAVES[index])
    assert merkle.verify_inclusion(leaf, index, size, expected, _root(size))
    # The probes of the reference tests: each must fail.
    probes = [
        (leaf, index - 1, size, expected, _root(size)),
        (leaf, index + 1, size, expected, _root(size)),
        (leaf, index ^ 2, size, expected, _root(size)),
        (leaf, index, size * 2, expected, _root(size)),
        (leaf, index, size // 2, expected, _root(size)),
        (merkle.leaf_hash(b"WrongLeaf"), index, size, expected, _root(size)),
        (leaf, index, size, expected, merkle.EMPTY_ROOT),
        (leaf, index, size, expected, SOME_HASH),
        (leaf, index, size, [*expected, b""], _root(size)),
        (leaf, index, size, [*expected, _root(size)], _root(size)),
        (leaf, index, size, [b"", *expected], _root(size)),
        (leaf, index, size, [_root(size), *expected], _root(size)),
    ]
    if expected:
        probes.append((leaf, index, size, expected[:-1], _root(size)))
    for position in range(len(expected)):
        flipped = list(expected)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        probes.append((leaf, index, size, flipped, _root(size)))
    for number, probe in enumerate(probes):
        if probe[1] == index and probe[2] == size and probe[3] == expected and probe[4] == _root(size):
            continue  # index ^ 2 can equal index only for sizes the probe does not change
        assert not merkle.verify_inclusion(*probe), f"probe {number} verified"


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_published_consistency_proofs(first: int, second: int, proof: list[str]) -> None:
    tree = merkle.MemoryTree(LEAVES)
    expected = [bytes.fromhex(p) for p in proof]
    assert tree.consistency_proof(first, second) == expected
    root1, root2 = _root(first), _root(second)
    assert merkle.verify_consistency(first, second, root1, root2, expected)
    if not expected:
        return
    probes = [
        (first - 1, second, root1, root2, expected),
        (first + 1, second, root1, root2, expected),
        (first ^ 2, second, root1, root2, expected),
        (first, second * 2, root1, root2, expected),
        (first, second // 2, root1, root2, expected),
        (first, second, SOME_HASH, root2, expected),
        (first, second, root1, SOME_HASH, expected),
        (first, second, root2, root1, expected),
        (first, second, root1, root2, []),
        (first, second, root1, root2, [*expected, root1]),
        (first, second, root1, root2, [*expected, root2]),
        (first, second, root1, root2, [root1, *expected]),
        (first, second, root1, root2, [root2, *expected]),
        (first, second, root1, root2, [expected[0], *expected]),
        (first, second, root1, root2, expected[:-1]),
    ]
    for position in range(len(expected)):
        flipped = list(expected)
        flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
        probes.append((first, second, root1, root2, flipped))
    for number, probe in enumerate(probes):
        assert not merkle.verify_consistency(*probe), f"probe {number} verified"


def test_trivial_consistency_cases() -> None:
    root = _root(3)
    assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert merkle.verify_consistency(0, 3, merkle.EMPTY_ROOT, root, [])
    assert merkle.verify_consistency(3, 3, root, root, [])
    assert not merkle.verify_consistency(3, 3, root, _root(4), [])
    assert not merkle.verify_consistency(3, 3, root, root, [root])
    assert not merkle.verify_consistency(4, 3, _root(4), root, [])
    assert not merkle.verify_inclusion(merkle.leaf_hash(b""), 0, 0, [], merkle.EMPTY_ROOT)


def _entries(count: int) -> list[bytes]:
    return [f"ni:///sha-256;{n:064x}?ver=CBV2.0".encode() for n in range(count)]


def test_every_proof_verifies_and_every_tampering_fails_for_sizes_1_to_70() -> None:
    entries = _entries(70)
    tree = merkle.MemoryTree()
    for size in range(1, 71):
        tree.append([entries[size - 1]])
        root = tree.root()
        assert root == merkle.root_of([merkle.leaf_hash(e) for e in entries[:size]])
        for index in range(size):
            leaf = merkle.leaf_hash(entries[index])
            proof = tree.inclusion_proof(index)
            assert merkle.verify_inclusion(leaf, index, size, proof, root)
            assert not merkle.verify_inclusion(merkle.leaf_hash(entries[index] + b"x"), index, size, proof, root)
            if size > 1:
                assert not merkle.verify_inclusion(leaf, (index + 1) % size, size, proof, root)
            for position in range(len(proof)):
                tampered = list(proof)
                tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
                assert not merkle.verify_inclusion(leaf, index, size, tampered, root)
        for first in range(0, size + 1):
            old_root = tree.root(first)
            proof = tree.consistency_proof(first)
            assert merkle.verify_consistency(first, size, old_root, root, proof), (first, size)
            if 0 < first < size:
                assert not merkle.verify_consistency(first, size, SOME_HASH, root, proof)
                assert not merkle.verify_consistency(first, size, old_root, SOME_HASH, proof)
                for position in range(len(proof)):
                    tampered = list(proof)
                    tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
                    assert not merkle.verify_consistency(first, size, old_root, root, tampered)


def test_appending_in_batches_gives_the_same_nodes_as_one_by_one() -> None:
    entries = _entries(300)
    one_by_one = merkle.MemoryTree()
    for entry in entries:
        one_by_one.append([entry])
    batched = merkle.MemoryTree()
    for start, end in [(0, 1), (1, 7), (7, 64), (64, 65), (65, 300)]:
        batched.append(entries[start:end])
    assert batched.nodes == one_by_one.nodes
    assert len(batched.nodes) == 2 * 300 - bin(300).count("1")


def test_range_and_argument_errors() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_ranges(6, 5)
    with pytest.raises(ValueError, match="not a subtree"):
        merkle.range_nodes(3, 7)  # not a subtree: [3, 7) straddles the tree's splits
