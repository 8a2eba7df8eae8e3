"""A project extends the allowlist with ``allowed-globals``; that never hides a dangerous callable.
"""

from __future__ import annotations

from pathlib import Path

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.model import Finding, Severity

# Protocol 2: NEWOBJ of mycompany.models.Net with state {'a': 1} (an instance of a project class).
PROJECT_CLASS = (b"\x80\x02cmycompany.models\nNet\nq\x00)\x81q\x01}q\x02X\x01\x00\x00\x00aq\x03"
                 b"K\x01sb.")
# Protocol 2: only pushes the global os.system and stops (referenced, never called).
REFERENCES_OS_SYSTEM = b"\x80\x02cos\nsystem\nq\x00."


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rules_about(findings: tuple[Finding, ...], qualname: str) -> set[str]:
    return {f.rule_id for f in findings if qualname in f.message}


def test_project_class_is_reported_until_allowed(tmp_path: Path) -> None:
    path = _write(tmp_path, "model.pkl", PROJECT_CLASS)
    default = scan([path], root=tmp_path)
    assert _rules_about(default.at_or_above(Severity.MEDIUM), "mycompany.models.Net")
    for pattern in ("mycompany.models.Net", "mycompany.models.*", "mycompany.**"):
        allowed = scan([path], Config(allowed_globals=(pattern,)), root=tmp_path)
        assert not allowed.at_or_above(Severity.MEDIUM), (pattern, allowed.findings)


def test_a_wildcard_segment_does_not_cover_deeper_names(tmp_path: Path) -> None:
    path = _write(tmp_path, "model.pkl", PROJECT_CLASS)
    result = scan([path], Config(allowed_globals=("mycompany.*",)), root=tmp_path)
    assert _rules_about(result.at_or_above(Severity.MEDIUM), "mycompany.models.Net")


def test_configuration_cannot_allow_a_dangerous_callable(tmp_path: Path) -> None:
    path = _write(tmp_path, "model.pkl", REFERENCES_OS_SYSTEM)
    result = scan([path], Config(allowed_globals=("os.system", "os.*")), root=tmp_path)
    assert result.failed
    assert any(f.severity is Severity.CRITICAL for f in result.findings), result.findings
