from pathlib import Path

from service.domain.errors import ErrorCode
from service.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_lists_every_setting() -> None:
    missing = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in README]
    assert missing == []


def test_the_readme_lists_every_error_code_with_its_status() -> None:
    missing = [
        code.value for code in ErrorCode if f"| {code.http_status} | `{code.value}` |" not in README
    ]
    assert missing == []
