"""The baseline: DeepFace's own REST API (`/represent`, Dlib + mtcnn) under gunicorn with
one worker per core, as its documentation runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from bench.gunicorn import GunicornApp


class DeepFaceApi(GunicornApp):
    def __init__(self, workers: int, port: int, deepface_home: Path) -> None:
        super().__init__(
            "deepface.api.src.app:create_app()",
            workers,
            port,
            {
                "DEEPFACE_HOME": str(deepface_home),
                "DEEPFACE_FACE_RECOGNITION_MODELS": "Dlib",
                "DEEPFACE_FACE_DETECTION_MODELS": "mtcnn",
                "TF_CPP_MIN_LOG_LEVEL": "3",
            },
        )

    async def represent(self, client: httpx.AsyncClient, image_url: str) -> dict[str, Any]:
        response = await client.post(
            self.url + "/represent",
            json={"img": image_url, "model_name": "Dlib", "detector_backend": "mtcnn"},
            timeout=900,
        )
        body: dict[str, Any] = response.json()
        body["status"] = response.status_code
        return body
