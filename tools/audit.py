"""Supply-chain check run by ``make test``: pip-audit over every pinned environment
(``constraints.txt`` and the test servers' ``requirements/*-constraints.txt``).

Known vulnerabilities fail the run, each printed with its fix version. Packages the
vulnerability service could not look up (offline, or a registry mirror without the JSON
API) are counted and reported, not failed: the pins still hold, and the next run with the
service reachable audits them.

    python tools/audit.py [PIP_AUDIT]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCKS = [REPO / "constraints.txt", *sorted((REPO / "requirements").glob("*-constraints.txt"))]


def audit(pip_audit: str, lock: Path) -> tuple[list[str], int, int]:
    """(findings, packages audited, packages not audited) for one lock file."""
    result = subprocess.run(
        [
            pip_audit,
            "-r",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: {lock.name}: vulnerability service unavailable ({last[:160]})")
        return [], 0, 0
    findings, audited, skipped = [], 0, 0
    for dependency in report.get("dependencies", []):
        if "skip_reason" in dependency:
            skipped += 1
            continue
        audited += 1
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            findings.append(
                f"{lock.name}: {dependency['name']} {dependency['version']}: {vuln['id']} "
                f"(fixed in {fixes})"
            )
    return findings, audited, skipped


def main() -> int:
    pip_audit = sys.argv[1] if len(sys.argv) > 1 else "pip-audit"
    failed = False
    for lock in LOCKS:
        findings, audited, skipped = audit(pip_audit, lock)
        for finding in findings:
            print(f"audit: VULNERABLE {finding}")
        failed = failed or bool(findings)
        print(
            f"audit: {lock.relative_to(REPO)}: {audited} packages audited, "
            f"{len(findings)} known vulnerabilities, {skipped} not found by the service"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
