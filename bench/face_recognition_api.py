"""The second baseline: `face_recognition` 1.3.0 (the fastest peer: dlib's HOG detector and
the same Dlib ResNet as ours) under gunicorn with one worker per core; see
bench/face_recognition_app.py for the server."""

from __future__ import annotations

from typing import Any

import httpx

from bench.gunicorn import GunicornApp


class FaceRecognitionApi(GunicornApp):
    def __init__(self, workers: int, port: int) -> None:
        super().__init__("bench.face_recognition_app:create_app()", workers, port, {})

    async def represent(self, client: httpx.AsyncClient, image_url: str) -> dict[str, Any]:
        response = await client.post(self.url + "/represent", json={"img": image_url}, timeout=900)
        body: dict[str, Any] = response.json()
        body["status"] = response.status_code
        return body
