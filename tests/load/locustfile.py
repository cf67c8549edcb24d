"""Locust users for the load test: each posts :explain for one of a few credit-score
applicants, back to back, and counts anything but a 200 as a failure."""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, constant, task

ROWS = json.loads(os.environ["LOAD_ROWS"])
MODEL = os.environ.get("LOAD_MODEL", "credit")


class Explainer(HttpUser):
    wait_time = constant(0)

    @task
    def explain(self) -> None:
        body = json.dumps({"instances": [random.choice(ROWS)]})
        with self.client.post(
            f"/v1/models/{MODEL}:explain",
            data=body,
            headers={"Content-Type": "application/json"},
            name=":explain",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
