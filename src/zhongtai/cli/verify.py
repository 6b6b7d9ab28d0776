"""`zhongtai verify`: check a trace log proof offline, with nothing but files and the brand's public key."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from zhongtai.trace import checkpoint
from zhongtai.trace.checkpoint import CheckpointInvalid, Verdict


class VerifyInputError(ValueError):
    pass


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise VerifyInputError(f"cannot read {path}: {exc.strerror}") from exc


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise VerifyInputError(f"the {what} {path} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(value, dict):
        raise VerifyInputError(f"the {what} {path} is not a JSON object")
    return value


def load_key(key: str) -> tuple[str | None, bytes]:
    """A verifier key, the base64 public key, or a file holding either (or the /public-key JSON)."""
    text = key
    path = Path(key)
    if len(key) < 4096 and path.is_file():
        text = _read_text(path).strip()
        if text.startswith("{"):
            document = json.loads(text)
            text = document.get("current", document).get("verifier_key") or document["public_key"]
    try:
        return checkpoint.parse_public_key(text)
    except CheckpointInvalid as exc:
        raise VerifyInputError(str(exc)) from exc


def entry_of_event(path: Path, event_id: str | None = None) -> str:
    """The CBV 2.0 hash ID of an EPCIS event: a bare event object (with its own `@context`), or an
    event of a document, hashed with the document's `@context` (its prefixes) and the event's own.

    A document with several events needs `event_id`: the event's eventID or its hash ID.
    """
    document = _read_json(path, "event")
    hashing: Any = importlib.import_module("zhongtai.trace.hashing")
    body = document.get("epcisBody", {})
    events = body.get("eventList")
    if events is None and isinstance(body.get("queryResults"), dict):
        events = body["queryResults"].get("resultsBody", {}).get("eventList")
    if events is None:
        return str(hashing.event_hash_id(document, hashing.namespaces_of(document.get("@context"))))
    outer = hashing.namespaces_of(document.get("@context"))
    candidates = []
    for event in events:
        if not isinstance(event, dict):
            continue
        namespaces = {**outer, **hashing.namespaces_of(event.get("@context"))}
        candidates.append((str(event.get("eventID", "")).strip(), str(hashing.event_hash_id(event, namespaces))))
    if event_id is not None:
        for given, hash_id in candidates:
            if event_id.strip() in (given, hash_id):
                return hash_id
        raise VerifyInputError(f"the document {path} holds no event with eventID or hash ID {event_id}")
    if len(candidates) != 1:
        raise VerifyInputError(
            f"the document {path} holds {len(candidates)} events; name one with --event-id (its eventID or hash ID)"
        )
    return candidates[0][1]


def verify_inclusion(
    checkpoint_path: Path | None,
    key: str,
    proof_path: Path,
    *,
    entry: str | None,
    event_path: Path | None,
    event_id: str | None = None,
) -> Verdict:
    key_name, public_key = load_key(key)
    proof = _read_json(proof_path, "proof")
    if event_path is not None:
        entry = entry_of_event(event_path, event_id)
    if entry is None:
        raise VerifyInputError("give the event (--event FILE) or its hash ID (--entry ni:///sha-256;…)")
    if checkpoint_path is not None:
        text = _read_text(checkpoint_path)
    elif isinstance(proof.get("checkpoint"), str):
        text = proof["checkpoint"]  # the proof's own copy: its signature is checked all the same
    else:
        raise VerifyInputError("give the signed checkpoint (--checkpoint FILE); the proof carries none")
    return checkpoint.verify_inclusion_bundle(text, public_key, proof, entry, key_name=key_name)


def verify_consistency(older_path: Path, newer_path: Path, key: str, proof_path: Path) -> Verdict:
    key_name, public_key = load_key(key)
    return checkpoint.verify_consistency_bundle(
        _read_text(older_path),
        _read_text(newer_path),
        public_key,
        _read_json(proof_path, "proof"),
        key_name=key_name,
    )
