"""The start-up ping of MongoDB: a server that refuses is named as such, at once."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import OperationFailure

from service.adapters.mongo import MongoRefused, hosts, wait_for_ping


class RefusingDatabase:
    def __init__(self) -> None:
        self.pings = 0

    async def command(self, name: str, **_: Any) -> dict[str, Any]:
        self.pings += 1
        raise OperationFailure(
            "Authentication failed.",
            code=18,
            details={"ok": 0, "errmsg": "Authentication failed.", "code": 18},
        )


async def test_a_server_that_refuses_the_credentials_is_not_waited_for() -> None:
    database = RefusingDatabase()
    with pytest.raises(MongoRefused, match="Authentication failed"):
        await wait_for_ping(database, within_s=30, on_retry=lambda _pause_s: None)
    assert database.pings == 1


def test_the_hosts_of_a_uri_never_carry_its_password() -> None:
    uri = "mongodb://face:s3cret@db-1:27017,db-2:27017/faces?replicaSet=rs0"
    assert hosts(uri) == "db-1:27017,db-2:27017"
