"""What each side found, by image kind: faces (and false ones), and how far its embedding
lies from DeepFace's own for the same image."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

from bench.loop import Sample

# Faces each kind of image holds; several-faces holds a crowd whose count is not fixed
# (a face at its edge may or may not count), so it has no expectation.
EXPECTED_FACES = {"portrait": 1, "photo-1080": 1, "photo-12mp": 1, "small-face": 1, "no-face": 0}


def faces_found(samples: Sequence[Sample], kind: str) -> dict[str, int]:
    """Faces found in the images of `kind`; a face beyond those expected is a false
    positive, an expected face not found is missed. Answers that do not say how many faces
    there were (a download or decode failure) are counted as unknown."""
    of_kind = [s for s in samples if s.kind == kind]
    known = [s.faces for s in of_kind if s.faces is not None]
    counts = {"images": len(of_kind), "unknown": len(of_kind) - len(known), "faces": sum(known)}
    expected = EXPECTED_FACES.get(kind)
    if expected is not None:
        counts["false_positives"] = sum(max(0, n - expected) for n in known)
        counts["missed"] = sum(max(0, expected - n) for n in known)
    return counts


def distance_by_kind(
    samples: Sequence[Sample], reference: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """L2 distance of each image's embedding to `reference`'s (of its largest face) for the
    same image name, by image kind over the images both embedded: of the largest face (the
    one a registration keeps), and of the face nearest the reference's. They differ where a
    false face is larger than the true one."""
    theirs = {s.name: np.asarray(s.embedding) for s in reference if s.embedding}
    largest: dict[str, list[float]] = {}
    nearest: dict[str, list[float]] = {}
    for s in samples:
        if s.embedding and s.name in theirs:
            shifts = [float(np.linalg.norm(np.asarray(e) - theirs[s.name])) for e in s.embeddings]
            largest.setdefault(s.kind, []).append(shifts[0])
            nearest.setdefault(s.kind, []).append(min(shifts))
    return {
        kind: {
            "mean": statistics.mean(v),
            "max": max(v),
            "nearest_face_mean": statistics.mean(nearest[kind]),
            "images": len(v),
        }
        for kind, v in largest.items()
    }


def max_embedding_shift(ours: Sequence[Sample], theirs: Sequence[Sample]) -> float:
    """The largest distance to DeepFace's embedding over the images where both found the
    one face."""
    both = distance_by_kind([s for s in ours if s.ok], [s for s in theirs if s.ok])
    shifts = [d["max"] for d in both.values()]
    return max(shifts) if shifts else float("nan")
