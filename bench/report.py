"""The benchmark's result: the ratios at the top of latest.json, the detail under them, the
printed tables and the chart."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.cpu import BENCH, MACHINE
from bench.loop import Run, Sample, percentile, say
from bench.peers import PEER_WORKERS
from bench.quality import distance_by_kind, faces_found, max_embedding_shift
from bench.service import BROKER, REFERENCE, SERVICE_MAIN, WORKERS
from bench.workload import KINDS

RESULTS = Path(__file__).resolve().parent / "results"
OTHERS = "other processes"  # the whole machine less the roles above: not ours
_DISTURBED = 0.05  # a share of the cores taken by other processes that skews the results


@dataclass(frozen=True)
class Runs:
    fast: Run
    reference: Run
    face_recognition: Run
    deepface: Run

    @property
    def all(self) -> tuple[Run, ...]:
        return (self.fast, self.reference, self.face_recognition, self.deepface)


def worker_cpu_ms(run: Run) -> float:
    """Core-ms of the process pool doing the inference, per image of the closed loop."""
    return run.cpu_ms_per_item.get(WORKERS, run.cpu_ms_per_item.get(PEER_WORKERS, math.nan))


def cpu_table(run: Run) -> dict[str, float]:
    """Core-ms per image by process, with what the rest of the machine spent meanwhile."""
    table = dict(run.cpu_ms_per_item)
    ours = sum(v for role, v in table.items() if role != MACHINE)
    table[OTHERS] = table[MACHINE] - ours
    return table


def cost_ms(samples: Sequence[Sample], kind: str) -> float:
    """The worker's wall time for one image of `kind`: decode, detect and embed."""
    costs = [
        s.stages_ms.get("decode", 0) + s.stages_ms.get("detect", 0) + s.stages_ms.get("embed", 0)
        for s in samples
        if s.kind == kind and s.ok
    ]
    return statistics.mean(costs) if costs else math.nan


def overhead_fraction(samples: Sequence[Sample]) -> float:
    return _share_outside_inference(samples, lambda s: s.latency_s * 1000)


def in_service_overhead_fraction(samples: Sequence[Sample]) -> float:
    """`overhead_fraction` without the broker's hops and the client: the share of the
    service's own time, from taking the command to the result's acknowledgement."""
    return _share_outside_inference(samples, lambda s: s.stages_ms.get("total", 0))


def _share_outside_inference(
    samples: Sequence[Sample], whole_ms: Callable[[Sample], float]
) -> float:
    """The mean share of each registration's `whole_ms` not spent detecting and embedding."""
    shares = [
        1 - (s.stages_ms.get("detect", 0) + s.stages_ms.get("embed", 0)) / whole_ms(s)
        for s in samples
        if s.ok and whole_ms(s)
    ]
    return statistics.mean(shares) if shares else math.nan


def sequential_breakdown_ms(samples: Sequence[Sample]) -> dict[str, float]:
    """Where one registration's time goes when it is alone: the service's own stages, and
    what is left of the client's latency (the broker both ways, the client itself). Says in
    milliseconds what `overhead_fraction` says as a share."""
    done = [s for s in samples if s.ok]
    if not done:
        return {}
    stages = sorted({stage for s in done for stage in s.stages_ms})
    breakdown = {
        stage: statistics.mean(s.stages_ms.get(stage, 0) for s in done) for stage in stages
    }
    latency = statistics.mean(s.latency_s * 1000 for s in done)
    breakdown["latency"] = latency
    breakdown["outside detect and embed"] = (
        latency - breakdown.get("detect", 0) - breakdown.get("embed", 0)
    )
    breakdown["outside the service"] = latency - breakdown.get("total", 0)
    return breakdown


def overhead_by_kind(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """`overhead_fraction`'s parts by image kind: a large photo's decode is outside
    detection and embedding too, so each kind has a share of its own."""
    table = {}
    for kind in sorted({s.kind for s in samples if s.ok}):
        done = [s for s in samples if s.ok and s.kind == kind]
        inside = [s.stages_ms.get("detect", 0) + s.stages_ms.get("embed", 0) for s in done]
        latency = [s.latency_s * 1000 for s in done]
        table[kind] = {
            "count": len(done),
            "latency_ms": statistics.mean(latency),
            "outside_ms": statistics.mean(w - i for w, i in zip(latency, inside, strict=True)),
            "decode_ms": statistics.mean(s.stages_ms.get("decode", 0) for s in done),
            "share": statistics.mean(1 - i / w for w, i in zip(latency, inside, strict=True)),
        }
    return table


def mean_ms_by_kind(run: Run) -> dict[str, float]:
    return {
        kind: statistics.mean([s.latency_s * 1000 for s in run.samples if s.kind == kind])
        for kind in KINDS
        if any(s.kind == kind for s in run.samples)
    }


def report(
    runs: Runs, extras: Mapping[str, Any], args: argparse.Namespace, detect_max_side: int
) -> dict[str, Any]:
    fast, reference = runs.fast, runs.reference
    summary = {
        "registrations_per_s": fast.per_second,
        "throughput_vs_deepface_api": fast.per_second / runs.deepface.per_second,
        "throughput_vs_face_recognition": fast.per_second / runs.face_recognition.per_second,
        "fast_vs_reference_worker_cpu": worker_cpu_ms(fast) / worker_cpu_ms(reference),
        "service_process_cpu_ms_per_registration": fast.cpu_ms_per_item[SERVICE_MAIN],
        "worker_cpu_ms_by_kind": fast.worker_cpu_ms_by_kind,
        "overhead_fraction": overhead_fraction(extras["sequential"]),
        "large_vs_portrait_cost": cost_ms(fast.samples, "photo-1080")
        / cost_ms(fast.samples, "portrait"),
        "throttled_p99_ms": percentile(extras["throttled_ms"], 99),
        "peak_rss_mb_per_worker": max(fast.peak_rss_mb_per_worker),
        "max_embedding_shift": max_embedding_shift(fast.samples, runs.deepface.samples),
    }
    detail = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": args.count,
        "concurrency": args.concurrency,
        "face_detect_max_side_px": detect_max_side,
        "reference_settings": REFERENCE,
        "sequential_breakdown_ms": sequential_breakdown_ms(extras["sequential"]),
        "in_service_overhead_fraction": in_service_overhead_fraction(extras["sequential"]),
        "overhead_by_kind": overhead_by_kind(extras["sequential"]),
        "cpus": os.cpu_count(),
        "runs": {
            run.label: {
                "per_second": run.per_second,
                "seconds": run.seconds,
                "p50_ms": run.latency_ms(50),
                "p95_ms": run.latency_ms(95),
                "p99_ms": run.latency_ms(99),
                "peak_rss_mb_per_worker": run.peak_rss_mb_per_worker,
                "embedder_runtimes": run.runtimes,
                "cpu_ms_per_image": cpu_table(run),
                "mean_ms_by_kind": mean_ms_by_kind(run),
                "faces_by_kind": {kind: faces_found(run.samples, kind) for kind in KINDS},
                "distance_to_deepface_api_by_kind": distance_by_kind(
                    run.samples, runs.deepface.samples
                ),
                "codes_by_kind": {
                    kind: dict(Counter(s.code for s in run.samples if s.kind == kind))
                    for kind in KINDS
                },
            }
            for run in runs.all
        },
        # Core-ms per registration by process during the closed loop (the per-process table).
        "cpu_ms_per_registration": {"fast": cpu_table(fast), "reference": cpu_table(reference)},
        "worker_cpu_ms_by_kind": {
            "fast": fast.worker_cpu_ms_by_kind,
            "reference": reference.worker_cpu_ms_by_kind,
        },
        "worker_cost_ms_by_kind": {kind: cost_ms(fast.samples, kind) for kind in KINDS},
    }
    return {**summary, "detail": detail}


def print_tables(result: Mapping[str, Any], runs: Runs) -> None:
    _print_runs(runs)
    _print_cpu(result["detail"]["cpu_ms_per_registration"], runs)
    _print_kinds(result, runs)
    say()
    say("one registration alone (the sequential pass), mean ms")
    for stage, ms in result["detail"]["sequential_breakdown_ms"].items():
        say(f"  {stage:<38} {ms:>10.1f}")
    share = result["detail"]["in_service_overhead_fraction"]
    say(f"  {'overhead share within the service':<38} {share:>10.3f}")
    say()
    say("the same by image kind")
    say(_header(["count", "latency ms", "outside ms", "decode ms", "share"], width=12))
    for kind, parts in result["detail"]["overhead_by_kind"].items():
        ms = "".join(f"{parts[key]:>12.1f}" for key in ("latency_ms", "outside_ms", "decode_ms"))
        say(f"{kind:<28}{parts['count']:>12}{ms}{parts['share']:>12.3f}")
    say()
    for key, value in result.items():
        if isinstance(value, float):
            say(f"{key:<40} {value:>10.4g}")


def _row(name: str, values: Sequence[float], width: int = 17, digits: int = 2) -> str:
    return f"{name:<28}" + "".join(f"{v:>{width}.{digits}f}" for v in values)


def _header(names: Sequence[str], width: int = 17) -> str:
    return f"{'':<28}" + "".join(f"{n:>{width}}" for n in names)


def _print_runs(runs: Runs) -> None:
    say()
    say(_header([r.label for r in runs.all]))
    for name, value in (
        ("images / s", lambda r: r.per_second),
        ("p50 latency ms", lambda r: r.latency_ms(50)),
        ("p99 latency ms", lambda r: r.latency_ms(99)),
        ("worker core-ms / image", worker_cpu_ms),
        ("peak RSS MB / worker", lambda r: max(r.peak_rss_mb_per_worker)),
    ):
        say(_row(name, [value(r) for r in runs.all], digits=1 if "ms" in name else 2))


def _print_cpu(table: Mapping[str, Mapping[str, float]], runs: Runs) -> None:
    say()
    say("core-ms per registration, closed loop")
    say(_header(["fast", "reference"]))
    for role in (SERVICE_MAIN, WORKERS, BROKER, BENCH, OTHERS, MACHINE):
        say(_row(role, [table["fast"][role], table["reference"][role]], digits=1))
    cores = os.cpu_count() or 1
    available = [cores * 1000 / runs.fast.per_second, cores * 1000 / runs.reference.per_second]
    say(_row(f"cores x wall ({cores} cores)", available, digits=1))
    for name, budget in zip(("fast", "reference"), available, strict=True):
        share = table[name][OTHERS] / budget
        if share > _DISTURBED:
            say(f"! other processes took {share:.0%} of the cores during the {name} run")


def _print_kinds(result: Mapping[str, Any], runs: Runs) -> None:
    detail = result["detail"]

    def line(name: str, cells: Sequence[str]) -> None:
        say(f"{name:<34}" + "".join(f"{c:>14}" for c in cells))

    say()
    line("by image kind", KINDS)
    say("worker core-ms per image, one at a time")
    for label, by_kind in detail["worker_cpu_ms_by_kind"].items():
        line(f"  ours {label}", [f"{by_kind.get(k, math.nan):.0f}" for k in KINDS])
    say("mean latency ms, closed loop")
    for run in runs.all:
        means = detail["runs"][run.label]["mean_ms_by_kind"]
        line(f"  {run.label}", [f"{means.get(k, math.nan):.0f}" for k in KINDS])
    say("faces found / images (+false, -missed)")
    for run in runs.all:
        found = detail["runs"][run.label]["faces_by_kind"]
        line(f"  {run.label}", [_faces_cell(found[k]) for k in KINDS])
    say("L2 to DeepFace API's embedding, largest face")
    for run in runs.all[:3]:
        shift = detail["runs"][run.label]["distance_to_deepface_api_by_kind"]
        line(f"  {run.label}", [_distance_cell(shift, k, "mean") for k in KINDS])
    # Its false faces can be larger than the true one: how far its true face lies.
    label = runs.face_recognition.label
    shift = detail["runs"][label]["distance_to_deepface_api_by_kind"]
    line(f"  {label}, nearest face", [_distance_cell(shift, k, "nearest_face_mean") for k in KINDS])


def _distance_cell(by_kind: Mapping[str, Mapping[str, float]], kind: str, which: str) -> str:
    return f"{by_kind[kind][which]:.2g}" if kind in by_kind else "-"


def _faces_cell(counts: Mapping[str, int]) -> str:
    cell = f"{counts['faces']}/{counts['images']}"
    if counts.get("false_positives"):
        cell += f" +{counts['false_positives']}"
    if counts.get("missed"):
        cell += f" -{counts['missed']}"
    return cell


def write(result: dict[str, Any], runs: Runs) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = result["detail"]["when"].replace(":", "")
    text = json.dumps(_without_nan(result), indent=2)
    (RESULTS / "latest.json").write_text(text + "\n")
    (RESULTS / f"{stamp}.json").write_text(text + "\n")
    chart(runs, RESULTS / "latest.png")
    say(f"\nwrote {RESULTS / 'latest.json'} and {RESULTS / 'latest.png'}")


def _without_nan(value: Any) -> Any:
    """JSON has no NaN: a number that could not be measured is null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    return value


def chart(runs: Runs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    colors = [f"C{i}" for i in range(len(runs.all))]
    left.bar([r.label for r in runs.all], [r.per_second for r in runs.all], color=colors)
    left.set_title("images per second")
    left.tick_params(axis="x", rotation=15)
    positions = np.arange(len(KINDS))
    width = 0.8 / len(runs.all)
    for index, (run, color) in enumerate(zip(runs.all, colors, strict=True)):
        means = mean_ms_by_kind(run)
        right.bar(
            positions + (index - (len(runs.all) - 1) / 2) * width,
            [means.get(k, 0) / 1000 for k in KINDS],
            width=width,
            color=color,
            label=run.label,
        )
    right.set_xticks(positions, KINDS, rotation=20)
    # DeepFace's API spends a minute on a 12 MP photo, ours a second: only a log scale
    # shows both.
    right.set_yscale("log")
    right.set_title("mean latency by image kind (s)")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
