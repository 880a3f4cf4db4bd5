"""The second baseline's server: `face_recognition` (dlib's HOG detector, then the same Dlib
ResNet as ours) behind a minimal HTTP API, run by gunicorn like DeepFace's own API.

    gunicorn --workers=2 'bench.face_recognition_app:create_app()'

POST /represent {"img": "<url>"} answers {"results": [{"box": [top, right, bottom, left],
"embedding": [...]}]}, every face found, with the library's own defaults throughout.
"""

from __future__ import annotations

import io
import urllib.request
from typing import Any

from flask import Flask, request

_FETCH_TIMEOUT_S = 60


def create_app() -> Flask:
    # Imported here, in the gunicorn worker: the import loads the library's models, which
    # the benchmark process itself never needs.
    import face_recognition  # type: ignore[import-untyped]

    app = Flask(__name__)

    @app.get("/")
    def alive() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/represent")
    def represent() -> tuple[dict[str, Any], int]:
        url = (request.get_json(silent=True) or {}).get("img")
        if not isinstance(url, str):
            return {"error": "img: an image URL is required"}, 400
        try:
            with urllib.request.urlopen(url, timeout=_FETCH_TIMEOUT_S) as response:
                data = response.read()
            image = face_recognition.load_image_file(io.BytesIO(data))
        except (OSError, ValueError) as error:
            return {"error": f"image not read: {error}"}, 400
        locations = face_recognition.face_locations(image)
        encodings = face_recognition.face_encodings(image, known_face_locations=locations)
        results = [
            {"box": list(box), "embedding": encoding.tolist()}
            for box, encoding in zip(locations, encodings, strict=True)
        ]
        return {"results": results}, 200

    return app
