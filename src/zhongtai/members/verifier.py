"""The external name/ID check with the identity authority, behind an interface.

`SandboxIdentityVerifier` stands in for a real authority gateway (e.g. a carrier or the national ID
verification service): it calls nobody. It answers "match" for every well-formed request except a
name that is exactly "不符" or "MISMATCH", which lets tests and demos exercise a refusal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from zhongtai.core.settings import Settings


@dataclass(frozen=True)
class VerifierAnswer:
    is_match: bool
    reference: str  # the authority's reference of the check, kept for disputes


class IdentityVerifier(Protocol):
    name: str

    async def check(self, *, name: str, id_number: str) -> VerifierAnswer: ...


class SandboxIdentityVerifier:
    name = "sandbox"
    MISMATCH_NAMES = frozenset({"不符", "MISMATCH"})

    async def check(self, *, name: str, id_number: str) -> VerifierAnswer:
        reference = "sandbox-" + hashlib.sha256(f"{name}\x00{id_number}".encode()).hexdigest()[:16]
        return VerifierAnswer(name not in self.MISMATCH_NAMES, reference)


def verifier_for(settings: Settings) -> IdentityVerifier:
    """The configured verifier. Only the sandbox exists until an authority contract is signed."""
    return SandboxIdentityVerifier()
