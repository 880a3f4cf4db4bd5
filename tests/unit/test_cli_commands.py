"""The client subcommands as a user types them: the command each produces, and the ones
refused before anything reaches Kafka. `send_command` is replaced, so no broker is needed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from service.entrypoints import client
from service.entrypoints.cli import main
from service.entrypoints.client import CommandRequest

KAFKA = [
    "--bootstrap-servers", "kafka:9092",
    "--commands-topic", "commands",
    "--results-topic", "results",
]  # fmt: skip


class Sent:
    """What `send_command` was asked to produce, and what it answers."""

    def __init__(self) -> None:
        self.calls: list[tuple[CommandRequest, float | None]] = []
        self.result: dict[str, Any] | None = None

    async def __call__(
        self,
        bootstrap: str,
        commands_topic: str,
        results_topic: str,
        request: CommandRequest,
        wait_s: float | None,
    ) -> dict[str, Any]:
        assert (bootstrap, commands_topic, results_topic) == ("kafka:9092", "commands", "results")
        self.calls.append((request, wait_s))
        return dict(request.body) if self.result is None else self.result


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    fake = Sent()
    monkeypatch.setattr(client, "send_command", fake)
    return fake


def run(*argv: str) -> int:
    return main([argv[0], *KAFKA, *argv[1:]])


def printed(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    body: dict[str, Any] = json.loads(out)
    return body


def test_unregister_every_person_of_a_library(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "unregister", "--user", "alice", "--category-id", "Cat-1",
        "--person-id", "ALL", "--face-id", "ALL", "--request-id", "r-1",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-1",
        "Action": "UnregisterCustomFace",
        "CategoryId": "Cat-1",
        "PersonId": "ALL",
        "FaceId": "ALL",
    }
    [(request, wait_s)] = sent.calls
    assert (request.user, wait_s) == ("alice", None)


def test_tag_sends_only_the_texts_given_and_an_empty_one_clears(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "tag", "--user", "alice", "--category-id", "Cat-1", "--person-id", "p1",
        "--person-name", "Ann", "--category-description", "", "--request-id", "r-2",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-2",
        "Action": "TagCustomPerson",
        "CategoryId": "Cat-1",
        "PersonId": "p1",
        "PersonName": "Ann",
        "CategoryDescription": "",
    }


def test_list_without_options_leaves_the_defaults_to_the_service(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("list", "--user", "alice", "--request-id", "r-3") == 0
    assert printed(capsys) == {"RequestId": "r-3", "Action": "ListCustomPersons"}


def test_list_a_later_page_of_one_library(sent: Sent, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "list", "--user", "alice", "--category-id", "Cat-1", "--max-results", "50",
        "--next-token", "tok", "--request-id", "r-4",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-4",
        "Action": "ListCustomPersons",
        "CategoryId": "Cat-1",
        "MaxResults": 50,
        "NextToken": "tok",
    }


def test_register_without_a_person_name_sends_none(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "register", "--user", "alice", "--category-id", "Cat-1", "--person-id", "p1",
        "--image-url", "https://example.com/a.jpg", "--request-id", "r-5",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-5",
        "Action": "RegisterCustomFace",
        "CategoryId": "Cat-1",
        "PersonId": "p1",
        "ImageUrl": "https://example.com/a.jpg",
    }


def test_search_repeats_category_id_into_category_ids(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "search", "--user", "alice", "--category-id", "Cat-1", "--category-id", "Staff",
        "--image-url", "https://example.com/frame.jpg", "--max-faces", "3", "--limit", "10",
        "--max-distance", "0.45", "--request-id", "r-8",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-8",
        "Action": "SearchCustomFace",
        "CategoryIds": ["Cat-1", "Staff"],
        "ImageUrl": "https://example.com/frame.jpg",
        "MaxFaces": 3,
        "Limit": 10,
        "MaxDistance": 0.45,
    }
    [(request, wait_s)] = sent.calls
    assert (request.user, wait_s) == ("alice", None)


def test_search_with_one_library_leaves_the_defaults_to_the_service(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(
        "search", "--user", "alice", "--category-id", "Cat-1",
        "--image-url", "https://example.com/frame.jpg", "--request-id", "r-9",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == {
        "RequestId": "r-9",
        "Action": "SearchCustomFace",
        "CategoryIds": ["Cat-1"],
        "ImageUrl": "https://example.com/frame.jpg",
    }


def test_search_wait_prints_the_matches(sent: Sent, capsys: pytest.CaptureFixture[str]) -> None:
    sent.result = {
        "RequestId": "r-10",
        "Faces": [
            {
                "Box": {"X": 10, "Y": 20, "W": 120, "H": 150},
                "Matches": [
                    {
                        "CategoryId": "Cat-1",
                        "PersonId": "p1",
                        "PersonName": None,
                        "FaceId": "6a2527da60aebff1258fa2997636c791",
                        "Distance": 0.0,
                    }
                ],
            }
        ],
    }

    code = run(
        "search", "--user", "u", "--category-id", "Cat-1", "--image-url",
        "https://example.com/a.jpg", "--request-id", "r-10", "--wait",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == sent.result
    [(_request, wait_s)] = sent.calls
    assert wait_s == 120.0


def test_each_command_gets_a_new_request_id_unless_given(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    run("list", "--user", "alice")
    first = printed(capsys)["RequestId"]
    run("list", "--user", "alice")
    second = printed(capsys)["RequestId"]

    assert first != second
    assert str(uuid.UUID(first)).upper() == first


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["list", "--user", "u", "--max-results", "101"],
            "face-service list: invalid command: --max-results (MaxResults): "
            "Input should be less than or equal to 100",
        ),
        (
            ["unregister", "--user", "u", "--category-id", "", "--person-id", "p",
             "--face-id", "ALL"],
            "face-service unregister: invalid command: --category-id (CategoryId): "
            "String should have at least 1 character",
        ),
        (
            ["tag", "--user", "u", "--category-id", "c", "--person-id", "p",
             "--person-description", "x" * 513],
            "face-service tag: invalid command: --person-description (PersonDescription): "
            "String should have at most 512 characters",
        ),
        (
            ["search", "--user", "u", "--category-id", "c", "--category-id", "",
             "--image-url", "https://example.com/a.jpg"],
            "face-service search: invalid command: --category-id (CategoryIds): "
            "String should have at least 1 character",
        ),
        (
            ["search", "--user", "u",
             *[arg for i in range(11) for arg in ("--category-id", f"c{i}")],
             "--image-url", "https://example.com/a.jpg"],
            "face-service search: invalid command: --category-id (CategoryIds): "
            "List should have at most 10 items after validation, not 11",
        ),
        (
            ["search", "--user", "u", "--category-id", "c", "--image-url",
             "https://example.com/a.jpg", "--max-faces", "11"],
            "face-service search: invalid command: --max-faces (MaxFaces): "
            "Input should be less than or equal to 10",
        ),
        (
            ["search", "--user", "u", "--category-id", "c", "--image-url",
             "https://example.com/a.jpg", "--limit", "0"],
            "face-service search: invalid command: --limit (Limit): "
            "Input should be greater than or equal to 1",
        ),
        (
            ["search", "--user", "u", "--category-id", "c", "--image-url",
             "https://example.com/a.jpg", "--max-distance", "0"],
            "face-service search: invalid command: --max-distance (MaxDistance): "
            "Input should be greater than 0",
        ),
        (
            ["list", "--user", "u", "--request-id", "r" * 129],
            "face-service list: invalid command: --request-id (RequestId): "
            "String should have at most 128 characters",
        ),
    ],
)  # fmt: skip
def test_an_invalid_command_is_refused_naming_the_option_and_never_sent(
    sent: Sent, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    assert run(*argv) == 2

    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", line + "\n")
    assert sent.calls == []


def test_an_invalid_command_is_refused_before_the_settings_are_read(
    sent: Sent, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_FETCH_PORTS", "not-a-port")  # settings that cannot load

    assert main(["list", "--user", "u", "--max-results", "0"]) == 2

    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("face-service list: invalid command: --max-results (MaxResults)")
    assert sent.calls == []


@pytest.mark.parametrize(
    "argv",
    [
        ["unregister", "--user", "u", "--category-id", "c", "--person-id", "p"],
        ["list", "--user", "u", "--max-results", "ten"],
        ["tag", "--category-id", "c", "--person-id", "p", "--person-name", "Ann"],
        ["search", "--user", "u", "--image-url", "https://example.com/a.jpg"],
        ["search", "--user", "u", "--category-id", "c"],
        ["search", "--user", "u", "--category-id", "c", "--image-url", "x", "--limit", "five"],
        ["search", "--user", "u", "--category-id", "c", "--image-url", "x", "--max-distance", "1m"],
    ],
)
def test_a_missing_or_mistyped_option_exits_2_with_usage_and_sends_nothing(
    sent: Sent, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        run(*argv)

    assert exited.value.code == 2
    assert "usage: face-service" in capsys.readouterr().err
    assert sent.calls == []


def test_wait_prints_the_result_and_exits_0_on_success(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    sent.result = {"RequestId": "r-6", "CategoryId": "Cat-1", "PersonId": "p1"}

    code = run(
        "tag", "--user", "u", "--category-id", "Cat-1", "--person-id", "p1",
        "--person-name", "Ann", "--request-id", "r-6", "--wait", "--timeout", "5",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys) == sent.result
    [(_request, wait_s)] = sent.calls
    assert wait_s == 5.0


def test_wait_exits_1_when_the_result_is_a_failure(
    sent: Sent, capsys: pytest.CaptureFixture[str]
) -> None:
    sent.result = {
        "RequestId": "r-7",
        "Code": "InvalidParameterValue.PersonIdNotExists",
        "Message": "no person p9",
        "HttpStatusCode": 400,
    }

    code = run(
        "unregister", "--user", "u", "--category-id", "Cat-1", "--person-id", "p9",
        "--face-id", "ALL", "--request-id", "r-7", "--wait",
    )  # fmt: skip

    assert code == 1
    assert printed(capsys) == sent.result


def test_unregister_help_names_every_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["unregister", "--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    assert "--face-id ALL every face of the person" in help_text
    assert "--person-id ALL --face-id ALL every person of the library" in help_text


def test_search_help_says_category_id_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["search", "--help"])

    help_text = " ".join(capsys.readouterr().out.split())
    assert "1-10 library ids of this user to search" in help_text
    assert "Give the option once for each." in help_text
    assert "Default: 5." in help_text  # --limit


def test_a_command_request_needs_a_request_id_to_match_its_result() -> None:
    with pytest.raises(ValueError, match="RequestId"):
        CommandRequest(user="u", body={"Action": "ListCustomPersons"})


def test_register_with_the_duplicate_guard(sent: Sent, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "register", "--user", "alice", "--category-id", "Cat-1", "--person-id", "p2",
        "--image-url", "https://img.example/a.jpg", "--duplicate-person-max-distance", "0.4",
        "--request-id", "r-9",
    )  # fmt: skip

    assert code == 0
    assert printed(capsys)["DuplicatePersonMaxDistance"] == 0.4
