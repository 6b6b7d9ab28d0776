"""EPC canonicalization: EPC URNs and GS1 Digital Links map to one stored form."""

from __future__ import annotations

import pytest

from zhongtai.trace.epc import InvalidEpc, canonical_epc, check_digit, normalize_epc, query_pattern


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", "https://id.gs1.org/01/10614141073464/21/2017"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0012345.11111.400", "https://id.gs1.org/414/0012345111112/254/400"),
        ("urn:epc:id:sgln:0012345.11111.0", "https://id.gs1.org/414/0012345111112"),
        ("urn:epc:id:pgln:4012345.00001", "https://id.gs1.org/417/4012345000016"),
        ("urn:epc:class:lgtin:4012345.012345.998877", "https://id.gs1.org/01/04012345123456/10/998877"),
        ("urn:epc:idpat:sgtin:4012345.098765.*", "https://id.gs1.org/01/04012345987652"),
        ("urn:epc:id:grai:0614141.12345.400", "https://id.gs1.org/8003/00614141123452400"),
        ("urn:epc:id:giai:0614141.12345400", "https://id.gs1.org/8004/061414112345400"),
        # Digital Links: any host, a resolver's path prefix, GTIN-13, lot and query dropped for a serial
        ("https://id.gs1.org/01/70614141123451/21/2017", "https://id.gs1.org/01/70614141123451/21/2017"),
        ("https://q.brand.example/01/09506000134352/21/Xk7Q", "https://id.gs1.org/01/09506000134352/21/Xk7Q"),
        ("http://brand.cn/qr/01/9506000134352/10/L1/21/AB?17=260101", "https://id.gs1.org/01/09506000134352/21/AB"),
        ("https://brand.cn/gtin/09506000134352/lot/L1", "https://id.gs1.org/01/09506000134352/10/L1"),
        ("https://brand.cn/00/106141412345678908", "https://id.gs1.org/00/106141412345678908"),
    ],
)
def test_gs1_identifiers_become_canonical_digital_links(given: str, canonical: str) -> None:
    assert canonical_epc(given) == canonical


def test_a_urn_and_its_digital_link_are_the_same_stored_epc() -> None:
    urn = "urn:epc:id:sgtin:9506000.013435.SERIAL1"
    link = "https://scan.brand.example/01/09506000134352/21/SERIAL1"
    assert normalize_epc(urn) == normalize_epc(link) == "https://id.gs1.org/01/09506000134352/21/SERIAL1"


def test_other_identifiers_are_kept_as_given() -> None:
    assert canonical_epc("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427") is None
    assert normalize_epc(" https://brand.example/things/42 ") == "https://brand.example/things/42"


@pytest.mark.parametrize(
    "bad",
    [
        "https://id.gs1.org/01/09506000134351/21/A",  # wrong check digit
        "urn:epc:id:sgtin:0614141.10734.2017",  # 12 digits instead of 13
        "urn:epc:id:sgtin:0614141.107346",  # no serial
        "urn:epc:id:sscc:0614141.123",  # short
        "urn:epc:id:unknown:1.2.3",
    ],
)
def test_malformed_gs1_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(InvalidEpc):
        canonical_epc(bad)


def test_check_digit() -> None:
    assert check_digit("950600013435") == "2"
    assert check_digit("10614141073464"[:-1]) == "4"


def test_patterns_match_below_the_class() -> None:
    assert query_pattern("urn:epc:idpat:sgtin:4012345.098765.*").matches_below
    assert query_pattern("https://id.gs1.org/01/04012345987652").matches_below
    exact = query_pattern("urn:epc:id:sgtin:0614141.107346.2017")
    assert not exact.matches_below
    assert exact.value == "https://id.gs1.org/01/10614141073464/21/2017"
