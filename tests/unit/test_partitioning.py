"""The partition a user's commands belong on is the one Kafka's Java client and aiokafka pick."""

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from service.domain.partitioning import key_partition, murmur2

# Utils.murmur2 of these keys as Java computes it (a signed int): the first six from Kafka's
# own UtilsTest.testMurmur2, the others as Akka's Murmur2Spec took them from Kafka.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
    b"1": -1993445489,
    b"12": 126087238,
    b"123": -267702483,
    b"1234": -1614185708,
    b"12345": -1188365604,
}

# Utils.toPositive(murmur2(key)) % 6, worked out by hand from the values above. toPositive
# clears the sign bit; abs() would give 2, 2, 0, 3, 3 and 5 here.
JAVA_PARTITION_OF_6 = {
    b"21": 0,
    b"foobar": 0,
    b"a-little-bit-long-string": 2,
    b"a-little-bit-longer-string": 5,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 5,
    b"1": 3,
}

USER_IDS = [
    "user-1",
    "u",
    "acme-corp/team-7",
    "用户-42",
    "Ünïcødé-ÄÖÜ",
    "ユーザー",
    "😀-emoji",
    "Ｆｕｌｌｗｉｄｔｈ",  # noqa: RUF001 (fullwidth on purpose)
    "x" * 120,
]


@pytest.mark.parametrize(("key", "java"), JAVA_MURMUR2.items())
def test_the_hash_is_javas_murmur2_read_unsigned(key: bytes, java: int) -> None:
    assert murmur2(key) == java & 0xFFFFFFFF


@pytest.mark.parametrize(("key", "partition"), JAVA_PARTITION_OF_6.items())
def test_the_partition_is_the_one_javas_default_partitioner_picks(
    key: bytes, partition: int
) -> None:
    assert key_partition(key, 6) == partition


@pytest.mark.parametrize("user", USER_IDS)
@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 6, 12, 100])
def test_a_user_id_in_any_language_gets_the_partition_aiokafka_picks(
    user: str, partitions: int
) -> None:
    key = user.encode("utf-8")
    every = list(range(partitions))
    assert key_partition(key, partitions) == DefaultPartitioner()(key, every, every)


def test_the_hash_equals_aiokafkas_on_random_bytes_of_every_tail_length() -> None:
    draw = random.Random(20261101)
    keys = [draw.randbytes(draw.randrange(0, 64)) for _ in range(3000)]
    assert [murmur2(key) for key in keys] == [aiokafka_murmur2(key) for key in keys]


def test_a_topic_has_at_least_one_partition() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        key_partition(b"user-1", 0)
