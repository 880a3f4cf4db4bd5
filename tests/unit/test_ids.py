import re

from service.domain.ids import LibraryId, derive_face_id, derive_request_id, identity_key

REQUEST_ID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def test_ids_differing_only_in_case_name_one_library() -> None:
    assert identity_key("Cat-1") == identity_key("cat-1") == identity_key("CAT-1")


def test_case_folding_covers_other_languages() -> None:
    assert identity_key("Straße") == identity_key("STRASSE")
    assert identity_key("ΣΟΦΊΑ") == identity_key("σοφία")


def test_compatibility_forms_normalise_to_one_key() -> None:
    # Full-width letters and a precomposed vs combining accent are the same id to a user.
    assert identity_key("\uff23\uff21\uff34") == identity_key("cat")
    assert identity_key("Cafe\u0301") == identity_key("Café")


def test_display_spelling_is_kept() -> None:
    library = LibraryId.of("Cat-1")
    assert library.display == "Cat-1"
    assert library.key == "cat-1"


def test_derived_request_id_is_stable_and_shaped_like_the_cloud_api() -> None:
    first = derive_request_id("face.register.commands", 3, 42)
    assert REQUEST_ID.match(first)
    assert first == derive_request_id("face.register.commands", 3, 42)
    assert first != derive_request_id("face.register.commands", 3, 43)
    assert first != derive_request_id("face.register.commands", 2, 42)


def test_face_id_is_32_lowercase_hex_and_deterministic() -> None:
    face_id = derive_face_id("user-1", "cat-1", "p1", "REQ-1")
    assert re.fullmatch(r"[0-9a-f]{32}", face_id)
    assert face_id == derive_face_id("user-1", "cat-1", "p1", "REQ-1")


def test_face_id_differs_between_owners_and_persons() -> None:
    base = derive_face_id("user-1", "cat-1", "p1", "REQ-1")
    assert base != derive_face_id("user-2", "cat-1", "p1", "REQ-1")
    assert base != derive_face_id("user-1", "cat-1", "p2", "REQ-1")
    assert base != derive_face_id("user-1", "cat-1", "p1", "REQ-2")


def test_ids_holding_separator_characters_cannot_collide() -> None:
    assert derive_face_id("u", "a\x1fb", "c", "R") != derive_face_id("u", "a", "b\x1fc", "R")
