"""`make bench-search`: SearchCustomFace's index against two baselines on the same data,
in one run. Prints a table with ratios and writes bench/results/search-latest.json and a
timestamped copy.

    .venv/bin/python -m bench.search [--sizes 10000,100000,1000000] [--queries 200]

The libraries are synthetic (random vectors, persons of 10 faces), which is what the
speed of an exact search depends on. Measured for each size:
- ours: `service.domain.face_vectors` (the service's index), time from a computed
  embedding to the matched persons (p50, p99), its build time and its memory;
- floor: plain NumPy over one float32 matrix (squared distances by one matrix product,
  `argpartition` for the nearest), the least an exact search can do;
- DeepFace.find: its own search path (a pandas DataFrame of the representations, a
  `verification.find_distance` call per row, filtered and sorted), run where it fits
  in memory and time: it keeps each embedding as a Python list of floats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.domain.face_vectors import LibraryVectors, nearest_persons

RESULTS = Path(__file__).resolve().parent / "results"
DIMENSIONS = 128
RAW_BYTES_PER_FACE = DIMENSIONS * 4
FACES_PER_PERSON = 10
LIMIT = 5
MAX_DISTANCE = 10.0  # no cut: every query ranks the whole library
DEEPFACE_MAX_FACES = 100_000  # beyond, its DataFrame of lists takes gigabytes and minutes
DEEPFACE_QUERIES = 3

Floats = NDArray[np.float32]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def library(size: int, seed: int) -> tuple[Floats, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(size, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    persons = [f"p{i // FACES_PER_PERSON}" for i in range(size)]
    faces = [f"{i:032x}" for i in range(size)]
    return vectors, persons, faces


def queries(vectors: Floats, count: int, seed: int) -> Floats:
    """Near stored faces, as a search for a registered person is."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.integers(0, len(vectors), count)]
    noisy = picked + rng.normal(scale=0.05, size=picked.shape).astype(np.float32)
    return noisy.astype(np.float32)


def latencies_ms(search: Callable[[Floats], object], probes: Floats) -> list[float]:
    search(probes[0])  # warm caches
    times = []
    for probe in probes:
        start = time.perf_counter()
        search(probe)
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def measure_ours(
    vectors: Floats, persons: list[str], faces: list[str], probes: Floats
) -> dict[str, Any]:
    tracemalloc.start()
    start = time.perf_counter()
    index = LibraryVectors("bench")
    index.add_many(persons, faces, vectors)
    build_s = time.perf_counter() - start
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    times = latencies_ms(lambda q: nearest_persons([index], q, LIMIT, MAX_DISTANCE), probes)
    return {**summary(times), "build_s": build_s, "bytes_per_face": held / len(vectors)}


def measure_floor(vectors: Floats, probes: Floats) -> dict[str, Any]:
    start = time.perf_counter()
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.einsum("ij,ij->i", matrix, matrix)
    build_s = time.perf_counter() - start

    def search(query: Floats) -> NDArray[np.intp]:
        scores = norms - 2 * (matrix @ query)
        nearest = np.argpartition(scores, LIMIT)[:LIMIT]
        return nearest[np.argsort(scores[nearest])]

    times = latencies_ms(search, probes)
    return {
        **summary(times),
        "build_s": build_s,
        "bytes_per_face": float(matrix.itemsize * DIMENSIONS),
    }


def measure_deepface(vectors: Floats, faces: list[str], probes: Floats) -> dict[str, Any]:
    """`DeepFace.find`'s loop over its DataFrame (deepface/modules/recognition.py), from the
    target embedding on: the representations as it loads them from its pickle."""
    import pandas as pd
    from deepface.modules import verification

    tracemalloc.start()
    start = time.perf_counter()
    frame = pd.DataFrame({"identity": faces, "embedding": [vector.tolist() for vector in vectors]})
    build_s = time.perf_counter() - start
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    threshold = verification.find_threshold("Dlib", "euclidean")

    def search(query: Floats) -> Any:
        target = query.tolist()
        distances = [
            float(verification.find_distance(row["embedding"], target, "euclidean"))
            for _, row in frame.iterrows()
        ]
        result = frame.drop(columns=["embedding"]).assign(distance=distances)
        result = result[result["distance"] <= max(threshold, MAX_DISTANCE)]
        return result.sort_values(by=["distance"]).head(LIMIT)

    times = latencies_ms(search, probes[: DEEPFACE_QUERIES + 1])
    return {**summary(times), "build_s": build_s, "bytes_per_face": held / len(vectors)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.search", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    rows: dict[str, dict[str, Any]] = {}
    for size in sizes:
        vectors, persons, faces = library(size, seed=size)
        probes = queries(vectors, args.queries, seed=size + 1)
        row: dict[str, Any] = {
            "ours": measure_ours(vectors, persons, faces, probes),
            "floor": measure_floor(vectors, probes),
        }
        if size <= DEEPFACE_MAX_FACES:
            row["deepface_find"] = measure_deepface(vectors, faces, probes)
        rows[str(size)] = row
        say(_line(size, row))
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "queries": args.queries,
        "limit": LIMIT,
        "raw_bytes_per_face": RAW_BYTES_PER_FACE,
        "sizes": rows,
    }
    _write(report)
    return 0


def _line(size: int, row: dict[str, Any]) -> str:
    ours, floor = row["ours"], row["floor"]
    parts = [
        f"{size:>9,} faces",
        f"ours p50 {ours['p50_ms']:7.2f} ms p99 {ours['p99_ms']:7.2f} ms",
        f"floor p50 {floor['p50_ms']:7.2f} ms p99 {floor['p99_ms']:7.2f} ms",
        f"p99 ours/floor {ours['p99_ms'] / floor['p99_ms']:4.2f}",
        f"memory {ours['bytes_per_face'] / RAW_BYTES_PER_FACE:4.2f}x raw",
        f"build {ours['build_s']:5.2f} s",
    ]
    deepface = row.get("deepface_find")
    if deepface is not None:
        parts.append(
            f"DeepFace.find p50 {deepface['p50_ms']:9.1f} ms "
            f"({deepface['p50_ms'] / ours['p50_ms']:,.0f}x ours, "
            f"{deepface['bytes_per_face'] / RAW_BYTES_PER_FACE:4.1f}x raw memory)"
        )
    else:
        parts.append(f"DeepFace.find not run (over {DEEPFACE_MAX_FACES:,} faces)")
    return " | ".join(parts)


def _write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S%z")
    text = json.dumps(report, indent=2) + "\n"
    for name in (f"search-{stamp}.json", "search-latest.json"):
        (RESULTS / name).write_text(text, encoding="utf-8")
    say(f"wrote {RESULTS / 'search-latest.json'}")


if __name__ == "__main__":
    sys.exit(main())
