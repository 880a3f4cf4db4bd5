from pathlib import Path

from service.domain.errors import ErrorCode
from service.settings import Settings
from tests.support.hostile_cases import CASES, OK, HostileCase

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_lists_every_setting() -> None:
    missing = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in README]
    assert missing == []


def test_the_readme_lists_every_error_code_with_its_status() -> None:
    missing = [
        code.value for code in ErrorCode if f"| {code.http_status} | `{code.value}` |" not in README
    ]
    assert missing == []


def test_the_readme_security_table_lists_every_hostile_case_with_its_result() -> None:
    def row_start(case: HostileCase) -> str:
        return f"| `{case.name}` |"

    rows = {line.split(" | ")[0] + " |": line for line in README.splitlines()}
    missing = []
    for case in CASES:
        line = rows.get(row_start(case), "")
        result = "registers" if case.expect == OK else f"`{case.expect}`"
        if case.dead_letter:
            result += " + DLQ copy"
        if not line.endswith(f"| {result} |"):
            missing.append(case.name)
    assert missing == []
