from service.contracts.documents import stale_documents


def test_schema_files_match_the_models() -> None:
    assert stale_documents() == [], "run `make schemas` and commit the files"
