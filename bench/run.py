"""`make bench`: the service on its fast path and on its reference path, against
`face_recognition` and DeepFace's own REST API, same images, same machine, same client
concurrency, in one run. Prints tables (throughput, each process's CPU, by image kind) and
writes bench/results/latest.json, a timestamped copy, and a chart.

    .venv/bin/python -m bench.run [--count 300] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.baseline import DeepFaceApi
from bench.face_recognition_api import FaceRecognitionApi
from bench.loop import say
from bench.peers import deepface_faces, face_recognition_faces, run_peer
from bench.report import Runs, print_tables, report, write
from bench.service import FAST, REFERENCE, run_ours
from bench.workload import bench_images, workload
from service.adapters.model_weights import place_weights
from service.settings import Settings
from tests.support.image_server import ImageServer
from tests.support.ports import free_port


async def main(args: argparse.Namespace) -> None:
    deepface_home = Path(args.deepface_home)
    place_weights(deepface_home, "Dlib", "mtcnn")
    images = bench_images()
    items = workload(images, args.count)
    # Image hosts keep connections open; every side may reuse them.
    server = ImageServer(keep_alive=True)
    for image in images:
        server.serve(image.path, image.data)
    server.start()
    workers = os.cpu_count() or 1
    fast_settings = dict(FAST)
    if args.detect_max_side is not None:
        fast_settings["FACE_DETECT_MAX_SIDE_PX"] = str(args.detect_max_side)
    reference_settings = {**fast_settings, **REFERENCE}
    # Every side: the same images, the same client concurrency, one worker process per core.
    common = (items, args.concurrency, server, workers)
    try:
        extras: dict[str, Any] = {}
        say(f"ours, fast path: {len(items)} registrations, {workers} workers")
        fast = await run_ours(
            "ours fast", fast_settings, *common, deepface_home, args.per_kind, extras
        )
        say(f"  {fast.per_second:.2f}/s")
        say(f"ours, reference path ({REFERENCE}): {len(items)} registrations")
        reference = await run_ours(
            "ours reference", reference_settings, *common, deepface_home, args.per_kind
        )
        say(f"  {reference.per_second:.2f}/s")
        say(f"face_recognition: {len(items)} requests, {workers} gunicorn workers")
        api = FaceRecognitionApi(workers, free_port())
        theirs = await run_peer("face_recognition", api, face_recognition_faces, *common)
        say(f"  {theirs.per_second:.2f}/s")
        say(f"DeepFace REST API: {len(items)} requests, {workers} gunicorn workers")
        deepface_api = DeepFaceApi(workers, free_port(), deepface_home)
        deepface = await run_peer("DeepFace API", deepface_api, deepface_faces, *common)
        say(f"  {deepface.per_second:.2f}/s")
    finally:
        server.stop()
    runs = Runs(fast, reference, theirs, deepface)
    detect_max_side = (
        args.detect_max_side
        if args.detect_max_side is not None
        else Settings.model_fields["face_detect_max_side_px"].default
    )
    result = report(runs, extras, args, detect_max_side)
    print_tables(result, runs)
    write(result, runs)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300, help="images per run")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--per-kind",
        type=int,
        # /proc counts CPU in 10 ms ticks: a 30 ms image needs a few samples.
        default=5,
        help="images of each kind sent one at a time for the workers' CPU by kind",
    )
    parser.add_argument(
        "--detect-max-side",
        type=int,
        default=None,
        help="the service's FACE_DETECT_MAX_SIDE_PX (unset: the service's default)",
    )
    parser.add_argument(
        "--deepface-home",
        default=str(Path.home() / ".cache" / "face-service-bench"),
        help="where the weights are placed for both sides",
    )
    args = parser.parse_args()
    # The service keeps its faces' keys in a file when it has no MongoDB: in a directory of
    # this run, not the user's home.
    with tempfile.TemporaryDirectory(prefix="face-bench-") as keys:
        os.environ.setdefault("EMBEDDED_FACE_KEYS_FILE", str(Path(keys) / "face-keys.sqlite"))
        asyncio.run(main(args))


if __name__ == "__main__":
    cli()
