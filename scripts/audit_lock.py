"""Audit the pins of requirements/lock.txt against PyPI's vulnerability data (`make lint`).

    python scripts/audit_lock.py [requirements/lock.txt] [--ignore requirements/audit-ignore.txt]

For each `name==version` pin it asks PyPI's JSON API for the release's `vulnerabilities`
(the OSV records PyPI publishes, the same data `pip-audit --vulnerability-service pypi` reads):
first `/pypi/<name>/<version>/json`; where that answers 404 (some mirrors and proxies serve only the
project document) `/pypi/<name>/json`, whose `vulnerabilities` describe the latest release — exact for
a pin that is the latest release. A pin behind the latest release that cannot be asked about directly
is reported as not audited (a warning; `--strict` makes it an error).

Exit status: 0 when no pin has a known vulnerability outside the ignore file, 1 otherwise, 2 when PyPI
does not answer at all. The ignore file lists one advisory id (or alias) per line, each with a reason
after `#`; a line without a reason is refused.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

PYPI = "https://pypi.org/pypi"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
TIMEOUT_SECONDS = 20


@dataclass
class Finding:
    name: str
    version: str
    vulnerabilities: list[dict[str, object]] = field(default_factory=list)
    audited: bool = True
    note: str = ""


def read_pins(lock: Path) -> list[tuple[str, str]]:
    pins = []
    for line in lock.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins.append((match.group(1).lower(), match.group(2)))
    return pins


def read_ignores(path: Path) -> set[str]:
    ignored: set[str] = set()
    if not path.exists():
        return ignored
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        advisory, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: an ignored advisory needs a reason after '#'")
        ignored.add(advisory.strip())
    return ignored


def _get(url: str) -> dict[str, object] | None:
    headers = {"accept": "application/json", "user-agent": "zhongtai-audit"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - fixed https URL
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - fixed https URL
            data: dict[str, object] = json.load(response)
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def audit(name: str, version: str) -> Finding:
    exact = _get(f"{PYPI}/{name}/{version}/json")
    if exact is not None:
        return Finding(name, version, list(exact.get("vulnerabilities") or []))  # type: ignore[call-overload]
    project = _get(f"{PYPI}/{name}/json")
    if project is None:
        return Finding(name, version, audited=False, note="not on PyPI")
    latest = str(project["info"]["version"])  # type: ignore[index]
    if latest == version:
        return Finding(name, version, list(project.get("vulnerabilities") or []))  # type: ignore[call-overload]
    return Finding(name, version, audited=False, note=f"pinned {version}, latest {latest}: re-lock to audit it")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", nargs="?", default="requirements/lock.txt", type=Path)
    parser.add_argument("--ignore", default="requirements/audit-ignore.txt", type=Path)
    parser.add_argument("--strict", action="store_true", help="a pin that could not be audited is an error")
    args = parser.parse_args()
    pins = read_pins(args.lock)
    ignored = read_ignores(args.ignore)
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            findings = list(pool.map(lambda pin: audit(*pin), pins))
    except (urllib.error.URLError, TimeoutError) as exc:
        print(f"audit: PyPI did not answer ({exc}); nothing was audited", file=sys.stderr)
        return 2
    failed = False
    for finding in findings:
        for vulnerability in finding.vulnerabilities:
            ids = {str(vulnerability.get("id")), *map(str, vulnerability.get("aliases") or [])}  # type: ignore[call-overload]
            if ids & ignored:
                continue
            failed = True
            fixed = ", ".join(map(str, vulnerability.get("fixed_in") or [])) or "no fixed release"  # type: ignore[call-overload]
            print(f"VULNERABLE {finding.name}=={finding.version}: {vulnerability.get('id')} (fixed in {fixed})")
        if not finding.audited:
            failed = failed or args.strict
            print(f"not audited {finding.name}=={finding.version}: {finding.note}", file=sys.stderr)
    audited = sum(finding.audited for finding in findings)
    print(f"audit: {audited} of {len(findings)} pins audited, {len(ignored)} advisories ignored", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
