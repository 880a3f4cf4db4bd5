"""The benchmark's images: a realistic mix, more than a third of them large photos."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from tests.support.images import (
    astronaut_variants,
    fixture_bytes,
    photo_with_face,
    small_no_face,
    tom_variants,
)

KINDS = ("portrait", "photo-1080", "photo-12mp", "small-face", "no-face", "several-faces")


@dataclass(frozen=True)
class BenchImage:
    name: str
    kind: str  # one of KINDS
    data: bytes

    @property
    def path(self) -> str:
        return f"/bench/{self.name}"


@cache
def bench_images() -> tuple[BenchImage, ...]:
    """Made once per process: the large photos take seconds to encode."""
    portraits = [
        BenchImage(f"portrait-{i}.png", "portrait", d) for i, d in enumerate(astronaut_variants(6))
    ]
    photos = [
        BenchImage(f"photo-1080-{i}.jpg", "photo-1080", photo_with_face(1920, 1080, px))
        for i, px in enumerate((700, 800, 900))
    ]
    large = [
        BenchImage(f"photo-12mp-{i}.jpg", "photo-12mp", photo_with_face(4000, 3000, px))
        for i, px in enumerate((1800, 2200))
    ]
    small = [BenchImage(f"small-{i}.png", "small-face", d) for i, d in enumerate(tom_variants(4))]
    failing = [
        BenchImage("no-face.jpg", "no-face", small_no_face()),
        BenchImage("several.jpg", "several-faces", fixture_bytes("t1.jpg")),
    ]
    return (*portraits, *photos, *large, *small, *failing)


# One cycle of 20 commands: 6 portraits, 5 1080p photos, 2 12 MP photos (35 % large),
# 4 small faces, 3 that fail.
_CYCLE = (
    ["portrait"] * 6 + ["photo-1080"] * 5 + ["photo-12mp"] * 2 + ["small-face"] * 4
    + ["no-face", "no-face", "several-faces"]
)  # fmt: skip


def workload(images: Sequence[BenchImage], count: int) -> list[BenchImage]:
    """`count` images in a fixed, interleaved order; every prefix of 20 has the full mix."""
    by_kind: dict[str, list[BenchImage]] = {}
    for image in images:
        by_kind.setdefault(image.kind, []).append(image)
    order = [
        _CYCLE[i] for i in (0, 6, 11, 13, 1, 7, 17, 2, 8, 14, 3, 12, 9, 18, 4, 15, 10, 5, 16, 19)
    ]
    picked = []
    for index in range(count):
        kind = order[index % len(order)]
        choices = by_kind[kind]
        picked.append(choices[(index // len(order)) % len(choices)])
    return picked
