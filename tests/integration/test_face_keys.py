"""The face keys, in MongoDB (mongomock-motor here, a real server when MONGODB_URI is set) and
in the embedded mode's SQLite file: the same tests for both, then what only the file adds."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from service.adapters.face_keys import FileFaceKeys, MongoFaceKeys
from service.service_layer.ports import FaceKeys


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "face-keys.sqlite"


@pytest.fixture(params=["mongo", "file", "unsynced file"])
async def keys(
    request: pytest.FixtureRequest, database: Any, key_file: Path
) -> AsyncIterator[FaceKeys]:
    # Typed as the port, so mypy tells when either store stops satisfying it.
    if request.param == "mongo":
        in_mongo = MongoFaceKeys(database)
        await in_mongo.ensure_indexes()
        store: FaceKeys = in_mongo
        yield store
    else:
        in_file = FileFaceKeys(key_file, synced=request.param == "file")
        store = in_file
        yield store
        in_file.close()


async def test_a_face_gets_one_32_byte_key(keys: FaceKeys) -> None:
    first = await keys.key_for("user-1", "f-1")
    assert len(first) == 32
    assert await keys.key_for("user-1", "f-1") == first
    assert await keys.find("user-1", "f-1") == first


async def test_other_faces_and_owners_get_other_keys(keys: FaceKeys) -> None:
    made = {
        await keys.key_for("user-1", "f-1"),
        await keys.key_for("user-1", "f-2"),
        await keys.key_for("user-2", "f-1"),
    }
    assert len(made) == 3


async def test_concurrent_first_calls_get_the_same_key(keys: FaceKeys) -> None:
    made = await asyncio.gather(*(keys.key_for("user-1", "f-1") for _ in range(20)))
    assert len(set(made)) == 1


async def test_a_destroyed_key_is_gone_and_never_comes_back(keys: FaceKeys) -> None:
    assert await keys.find("user-1", "f-1") is None
    old = await keys.key_for("user-1", "f-1")
    kept = await keys.key_for("user-1", "f-2")
    await keys.destroy("user-1", ["f-1", "never-made"])
    assert await keys.find("user-1", "f-1") is None
    assert await keys.find("user-1", "f-2") == kept
    assert await keys.key_for("user-1", "f-1") != old


async def test_destroying_unknown_or_no_ids_is_fine(keys: FaceKeys) -> None:
    await keys.destroy("user-1", ["f-9"])
    await keys.destroy("user-1", [])
    assert await keys.find("user-1", "f-9") is None


async def test_destroy_touches_only_its_owner(keys: FaceKeys) -> None:
    other = await keys.key_for("user-2", "f-1")
    await keys.key_for("user-1", "f-1")
    await keys.destroy("user-1", ["f-1"])
    assert await keys.find("user-2", "f-1") == other


@pytest.mark.parametrize("synced", [True, False])
async def test_file_keys_survive_reopening(key_file: Path, synced: bool) -> None:
    first = FileFaceKeys(key_file, synced)
    key = await first.key_for("user-1", "f-1")
    first.close()
    second = FileFaceKeys(key_file)
    try:
        assert await second.find("user-1", "f-1") == key
    finally:
        second.close()


@pytest.mark.parametrize("synced", [True, False])
async def test_a_destroyed_key_is_overwritten_in_the_file(key_file: Path, synced: bool) -> None:
    store = FileFaceKeys(key_file, synced)
    try:
        keys = [await store.key_for("user-1", f"f-{n}") for n in range(3)]
        assert all(key in _raw(key_file) for key in keys)
        await store.destroy("user-1", ["f-0", "f-1"])
    finally:
        store.close()
    left = _raw(key_file)
    assert keys[0] not in left and keys[1] not in left
    assert keys[2] in left


def test_the_file_is_made_owner_only(key_file: Path) -> None:
    FileFaceKeys(key_file).close()
    assert _mode(key_file) == 0o600


async def test_reset_starts_without_keys(key_file: Path) -> None:
    store = FileFaceKeys(key_file)
    await store.key_for("user-1", "f-1")
    store.close()
    fresh = FileFaceKeys.reset(key_file)
    try:
        assert await fresh.find("user-1", "f-1") is None
        assert _mode(key_file) == 0o600
    finally:
        fresh.close()


def _raw(path: Path) -> bytes:
    return path.read_bytes()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)
