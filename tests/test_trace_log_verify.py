"""`zhongtai verify`: offline verdicts on real proofs, and on tampered events, proofs, keys and checkpoints."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.factories import make_brand
from tests.test_trace_log import PUBLIC_URL, append, entries, sign
from zhongtai.cli.main import app
from zhongtai.core.runtime import Runtime
from zhongtai.trace import checkpoint, merkle


def verify(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", *(str(a) for a in args)])
    return result.exit_code, " ".join(result.output.split())


class Published:
    """What an auditor saved from the log's public endpoints."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, name: str, value: Any) -> Path:
        path = self.directory / name
        path.write_text(value if isinstance(value, str) else json.dumps(value), encoding="utf-8")
        return path


async def publish(client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path) -> tuple[Published, list[bytes], Any]:
    brand = await make_brand(runtime)
    base = f"/epcis/log/{brand.tenant.slug}"
    values = entries(0, 21)
    await append(runtime, brand.id, values[:9])
    await sign(runtime, brand.id)
    files = Published(tmp_path)
    files.save("old.checkpoint", (await client.get(f"{base}/checkpoint")).text)
    await append(runtime, brand.id, values[9:])
    await sign(runtime, brand.id)
    files.save("new.checkpoint", (await client.get(f"{base}/checkpoint")).text)
    keys = (await client.get(f"{base}/public-key")).json()
    files.save("key.json", keys)
    files.save("key.txt", keys["current"]["verifier_key"])
    files.save("inclusion.json", (await client.get(f"{base}/proof/inclusion", params={"leaf_index": 12})).json())
    files.save("consistency.json", (await client.get(f"{base}/proof/consistency", params={"first": 9})).json())
    return files, values, brand


async def test_real_proofs_verify(client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path) -> None:
    files, values, _ = await publish(client, runtime, tmp_path)
    d = files.directory
    code, output = verify(
        "--checkpoint", d / "new.checkpoint", "--key", d / "key.txt", "--proof", d / "inclusion.json",
        "--entry", values[12].decode(),
    )  # fmt: skip
    assert code == 0, output
    assert "VERIFIED: entry is leaf 12" in output
    # The key as the /public-key JSON, or as bare base64; the checkpoint taken from the proof itself.
    bare = json.loads((d / "key.json").read_text())["current"]["public_key"]
    for key in (str(d / "key.json"), bare):
        code, output = verify("--key", key, "--proof", d / "inclusion.json", "--entry", values[12].decode())
        assert code == 0, output
    code, output = verify(
        "--consistency", d / "old.checkpoint", d / "new.checkpoint", "--key", d / "key.txt",
        "--proof", d / "consistency.json",
    )  # fmt: skip
    assert code == 0, output
    assert "CONSISTENT" in output


async def test_tampering_is_detected(client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path) -> None:
    files, values, brand = await publish(client, runtime, tmp_path)
    d = files.directory
    common = ["--checkpoint", d / "new.checkpoint", "--proof", d / "inclusion.json"]

    # A tampered event: its hash ID is not the leaf the proof is for.
    code, output = verify(*common, "--key", d / "key.txt", "--entry", values[13].decode())
    assert code == 1
    assert "NOT VERIFIED" in output

    # A tampered proof: one bit of one hash.
    proof = json.loads((d / "inclusion.json").read_text())
    first = bytearray(base64.b64decode(proof["inclusion_path"][0]))
    first[0] ^= 1
    proof["inclusion_path"][0] = base64.b64encode(first).decode()
    tampered = files.save("tampered.json", proof)
    code, output = verify(
        "--checkpoint", d / "new.checkpoint", "--proof", tampered, "--key", d / "key.txt",
        "--entry", values[12].decode(),
    )  # fmt: skip
    assert code == 1
    assert "NOT VERIFIED" in output

    # Another key (another brand's, or a forger's).
    other = await make_brand(runtime)
    await append(runtime, other.id, entries(500, 1))
    await sign(runtime, other.id)
    other_key = (await client.get(f"/epcis/log/{other.tenant.slug}/public-key")).json()["current"]["public_key"]
    code, output = verify(*common, "--key", other_key, "--entry", values[12].decode())
    assert code == 1
    assert "no signature by the key" in output

    # An edited checkpoint: the signature no longer verifies.
    text = (d / "new.checkpoint").read_text().split("\n")
    text[1] = "22"
    edited = files.save("edited.checkpoint", "\n".join(text))
    code, output = verify("--checkpoint", edited, "--proof", d / "inclusion.json", "--key", d / "key.txt",
                          "--entry", values[12].decode())  # fmt: skip
    assert code == 1
    assert "does not verify" in output

    # A rolled-back log: the "newer" checkpoint is the older one.
    code, output = verify(
        "--consistency", d / "new.checkpoint", d / "old.checkpoint", "--key", d / "key.txt",
        "--proof", d / "consistency.json",
    )  # fmt: skip
    assert code == 1
    assert "rolled back" in output

    # A forked log: a head signed with the brand's own key over a rewritten history.
    forged_values = list(values)
    forged_values[3] = b"ni:///sha-256;forged?ver=CBV2.0"
    forged_root = merkle.MemoryTree(forged_values).root()
    async with runtime.db.unit_of_work(tenant_id=brand.id) as session:
        key, private_key = await checkpoint.signing_key(session, runtime.crypto, brand.id, public_url=PUBLIC_URL)
    body = checkpoint.checkpoint_body(key.key_name, 21, forged_root, 1_800_000_000)
    fork = files.save("fork.checkpoint", checkpoint.sign_note(body, key.key_name, private_key))
    code, output = verify(
        "--consistency", d / "old.checkpoint", fork, "--key", d / "key.txt", "--proof", d / "consistency.json"
    )
    assert code == 1
    assert "NOT CONSISTENT" in output


def test_unreadable_inputs_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    code, output = verify("--proof", missing, "--key", "AAAA", "--entry", "x")
    assert code == 1
    assert "error" in output
    (tmp_path / "p.json").write_text("{}")
    code, output = verify("--proof", tmp_path / "p.json", "--key", base64.b64encode(bytes(32)).decode())
    assert code == 1
    assert "--event FILE" in output


async def test_an_event_file_is_hashed_and_checked(client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path) -> None:
    hashing = pytest.importorskip("zhongtai.trace.hashing")
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-11-22T08:00:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:6901234.056789.1001"],
        "action": "ADD",
        "bizStep": "commissioning",
    }
    hash_id = hashing.event_hash_id(event, hashing.namespaces_of(None))
    brand = await make_brand(runtime)
    await append(runtime, brand.id, [*entries(0, 4), hash_id.encode()])
    await sign(runtime, brand.id)
    base = f"/epcis/log/{brand.tenant.slug}"
    files = Published(tmp_path)
    proof = files.save("p.json", (await client.get(f"{base}/proof/inclusion", params={"entry": hash_id})).json())
    key = (await client.get(f"{base}/public-key")).json()["current"]["verifier_key"]
    code, output = verify("--proof", proof, "--key", key, "--event", files.save("event.json", event))
    assert code == 0, output
    event["bizStep"] = "shipping"
    code, output = verify("--proof", proof, "--key", key, "--event", files.save("edited.json", event))
    assert code == 1
    assert "NOT VERIFIED" in output


async def test_an_event_of_a_document_is_hashed_with_the_documents_context(
    client: httpx.AsyncClient, runtime: Runtime, tmp_path: Path
) -> None:
    """An auditor keeps the captured document: `--event DOC --event-id ID` hashes that event with the
    document's `@context` (its extension prefixes), as capture did."""
    hashing = pytest.importorskip("zhongtai.trace.hashing")
    target = {
        "type": "ObjectEvent",
        "eventID": "urn:uuid:7a000000-0000-4000-8000-000000000001",
        "eventTime": "2026-11-22T08:00:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["urn:epc:id:sgtin:6901234.056789.1001"],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "brand:cellar": "C-7",  # a prefix defined only in the document's @context
    }
    other = {**target, "eventID": "urn:uuid:7a000000-0000-4000-8000-000000000002", "brand:cellar": "C-8"}
    context = [
        "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
        {"brand": "https://brand.example/voc/"},
    ]
    doc = {"@context": context, "type": "EPCISDocument", "epcisBody": {"eventList": [other, target]}}
    hash_id = hashing.event_hash_id(target, hashing.namespaces_of(context))
    assert hash_id != hashing.event_hash_id(target, hashing.namespaces_of(None))
    brand = await make_brand(runtime)
    await append(runtime, brand.id, [*entries(0, 4), hash_id.encode()])
    await sign(runtime, brand.id)
    base = f"/epcis/log/{brand.tenant.slug}"
    files = Published(tmp_path)
    proof = files.save("p.json", (await client.get(f"{base}/proof/inclusion", params={"entry": hash_id})).json())
    key = (await client.get(f"{base}/public-key")).json()["current"]["verifier_key"]
    document_file = files.save("document.json", doc)
    for chosen in (target["eventID"], hash_id):
        code, output = verify("--proof", proof, "--key", key, "--event", document_file, "--event-id", chosen)
        assert code == 0, output
    code, output = verify("--proof", proof, "--key", key, "--event", document_file)
    assert code == 1
    assert "--event-id" in output
    code, output = verify("--proof", proof, "--key", key, "--event", document_file, "--event-id", "urn:uuid:none")
    assert (code, "no event with eventID" in output) == (1, True)
    # The event cut out of its document without the context hashes otherwise: not this leaf.
    code, output = verify("--proof", proof, "--key", key, "--event", files.save("bare.json", target))
    assert (code, "NOT VERIFIED" in output) == (1, True)
    # …and verifies once it carries the document's context, as query results do.
    carried = files.save("carried.json", {"@context": context, **target})
    code, output = verify("--proof", proof, "--key", key, "--event", carried)
    assert code == 0, output
