from pathlib import Path

from service.contracts.documents import SCHEMAS_DIR, stale_documents, write_documents


def test_schema_files_match_the_models() -> None:
    assert stale_documents() == [], "run `make schemas` and commit the files"


def test_a_schema_no_model_generates_is_stale_and_removed_on_write(tmp_path: Path) -> None:
    write_documents(tmp_path)
    (tmp_path / "register-failed.schema.json").write_text("{}\n", encoding="utf-8")

    assert stale_documents(tmp_path) == ["register-failed.schema.json"]
    write_documents(tmp_path)
    assert stale_documents(tmp_path) == []
    assert not (tmp_path / "register-failed.schema.json").exists()


def test_every_message_has_its_schema_file() -> None:
    names = {path.name for path in SCHEMAS_DIR.glob("*.schema.json")}
    assert names == {
        "register-custom-face-command.schema.json",
        "unregister-custom-face-command.schema.json",
        "tag-custom-person-command.schema.json",
        "list-custom-persons-command.schema.json",
        "search-custom-face-command.schema.json",
        "register-succeeded.schema.json",
        "unregister-succeeded.schema.json",
        "tag-succeeded.schema.json",
        "list-succeeded.schema.json",
        "search-succeeded.schema.json",
        "command-failed.schema.json",
        "face-registered.schema.json",
        "face-secret.schema.json",
        "person-texts-secret.schema.json",
        "faces-unregistered.schema.json",
        "person-tagged.schema.json",
    }
