"""The public log endpoints: checkpoints, keys, proofs, their errors, and the per-address limit."""

from __future__ import annotations

import base64

import httpx

from tests.factories import make_brand
from tests.test_trace_log import PUBLIC_URL, append, entries, sign
from zhongtai.core.runtime import Runtime
from zhongtai.trace import checkpoint, merkle


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


async def test_checkpoint_key_and_proofs_verify_offline(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    base = f"/epcis/log/{brand.tenant.slug}"
    assert (await client.get(f"{base}/checkpoint")).json()["error"] == "no_signed_tree_head"
    assert (await client.get(f"{base}/public-key")).status_code == 404
    values = entries(0, 13)
    await append(runtime, brand.id, values[:6])
    first = await sign(runtime, brand.id)
    await append(runtime, brand.id, values[6:])
    await sign(runtime, brand.id)

    text = await client.get(f"{base}/checkpoint")
    assert text.headers["content-type"].startswith("text/plain")
    as_json = (await client.get(f"{base}/checkpoint", headers={"accept": "application/json"})).json()
    assert as_json["checkpoint"] == text.text
    assert as_json["tree_size"] == 13
    assert as_json["root_hash"] == b64(merkle.MemoryTree(values).root())
    assert as_json["origin"] == f"trace.example/epcis/log/{brand.tenant.slug}"

    keys = (await client.get(f"{base}/public-key")).json()
    name, public_key = checkpoint.parse_public_key(keys["current"]["verifier_key"])
    assert name == as_json["origin"]
    assert keys["current"]["public_key"] == b64(public_key)
    checkpoint.verify_checkpoint(text.text, public_key)

    by_entry = (await client.get(f"{base}/proof/inclusion", params={"entry": values[4].decode()})).json()
    by_index = (await client.get(f"{base}/proof/inclusion", params={"leaf_index": 4})).json()
    assert by_entry["leaf_index"] == by_index["leaf_index"] == 4
    assert by_entry["inclusion_path"] == by_index["inclusion_path"]
    assert by_entry["checkpoint"] == text.text
    assert by_entry["tree_size"] == 13
    assert by_entry["leaf_hash"] == b64(merkle.leaf_hash(values[4]))
    verdict = checkpoint.verify_inclusion_bundle(text.text, public_key, by_entry, values[4].decode())
    assert verdict.ok, verdict.message
    assert not checkpoint.verify_inclusion_bundle(text.text, public_key, by_entry, values[5].decode()).ok

    old = (await client.get(f"{base}/proof/inclusion", params={"leaf_index": 2, "tree_size": 6})).json()
    assert old["checkpoint"] == first.note
    unsigned = (await client.get(f"{base}/proof/inclusion", params={"leaf_index": 2, "tree_size": 7})).json()
    assert unsigned["checkpoint"] is None
    assert unsigned["tree_size"] == 7

    history = (await client.get(f"{base}/checkpoints")).json()
    assert [c["tree_size"] for c in history["items"]] == [6, 13]
    assert history["next_from_size"] is None
    paged = (await client.get(f"{base}/checkpoints", params={"limit": 1})).json()
    assert [c["tree_size"] for c in paged["items"]] == [6]
    assert paged["next_from_size"] == 7

    consistency = (await client.get(f"{base}/proof/consistency", params={"first": 6})).json()
    assert consistency["second"] == 13
    verdict = checkpoint.verify_consistency_bundle(first.note, text.text, public_key, consistency)
    assert verdict.ok, verdict.message


async def test_clear_refusals(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    base = f"/epcis/log/{brand.tenant.slug}"
    await append(runtime, brand.id, entries(0, 4))
    await sign(runtime, brand.id)
    await append(runtime, brand.id, entries(4, 1))  # not yet under a signed head

    async def error(path: str, **params: object) -> tuple[int, str]:
        response = await client.get(f"{base}{path}", params=params)
        return response.status_code, response.json()["error"]

    assert await error("/proof/inclusion", leaf_index=1, tree_size=9) == (400, "tree_size_beyond_log")
    assert await error("/proof/inclusion", leaf_index=4, tree_size=3) == (400, "bad_proof_request")
    assert await error("/proof/inclusion", leaf_index=4) == (400, "bad_proof_request")
    assert await error("/proof/inclusion", leaf_index=40) == (404, "unknown_leaf")
    assert await error("/proof/inclusion", entry="ni:///sha-256;nope") == (404, "unknown_leaf")
    assert await error("/proof/inclusion") == (400, "bad_proof_request")
    assert await error("/proof/inclusion", leaf_index=-1) == (422, "validation_error")
    assert await error("/proof/consistency", first=4, second=2) == (400, "bad_proof_request")
    assert await error("/proof/consistency", first=1, second=9) == (400, "tree_size_beyond_log")
    missing = await client.get("/epcis/log/no-such-brand/checkpoint")
    assert missing.status_code == 404


async def test_log_endpoints_are_limited_per_address(client: httpx.AsyncClient, runtime: Runtime) -> None:
    brand = await make_brand(runtime)
    url = f"/epcis/log/{brand.tenant.slug}/checkpoints"
    statuses = []
    # 300 a minute: the limit refills at 5 a second, so on a slow machine more than 300 come back
    # before the first refusal; any loop faster than the refill meets one. The refusal itself is
    # checked, not a later request, which a refill between the two could let through.
    refused = None
    for _ in range(5000):
        response = await client.get(url)
        statuses.append(response.status_code)
        if response.status_code != 200:
            refused = response
            break
    assert len(statuses) > 300, len(statuses)
    assert refused is not None
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # Another address is not held back by the first one's exhaustion.
    transport = httpx.ASGITransport(app=client._transport.app, client=("10.20.30.40", 5555))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        assert (await other.get(url)).status_code == 200


async def test_public_url_gives_the_origin(runtime: Runtime) -> None:
    assert checkpoint.log_origin("https://id.brand.example/", "moutai") == "id.brand.example/epcis/log/moutai"
    assert checkpoint.log_origin("http://127.0.0.1:8000", "x") == "127.0.0.1:8000/epcis/log/x"
    assert PUBLIC_URL.startswith("https://")
