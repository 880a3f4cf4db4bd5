"""The one partition of the commands topic a user's commands belong on.

Everything kept per user (the rate limiter, the order of a person's commands) assumes that
all of a user's commands sit on one partition: the one Kafka's Java client picks for the
key, `toPositive(murmur2(key)) % partitions`. aiokafka picks the same one; librdkafka's
default (`consistent_random`, CRC32) does not, and a producer may also name a partition
itself. The hash is stated here, in the standard library, rather than imported from a
Kafka client, so the rule stays a plain function the edge and the replay share.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's `Utils.murmur2`, as an unsigned 32-bit value (Java's int, read unsigned)."""
    length = len(key)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = key[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def key_partition(key: bytes, partition_count: int) -> int:
    """The partition Kafka's default partitioner gives a record with this key:
    `Utils.toPositive(Utils.murmur2(key)) % numPartitions`, toPositive clearing the sign bit."""
    if partition_count < 1:
        raise ValueError(f"a topic has at least one partition, not {partition_count}")
    return (murmur2(key) & 0x7FFFFFFF) % partition_count
