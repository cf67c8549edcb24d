"""Errors that carry their HTTP status.

Nothing here imports aiohttp, so the engine, the codecs and the offline batch runner
raise the same errors; one middleware renders them as ``{"error": message}``.
"""

from __future__ import annotations


class ExplainerError(Exception):
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ExplainerError):
    status = 400


class ModelNotFound(ExplainerError):
    status = 404


class PayloadTooLarge(ExplainerError):
    status = 413


class Overloaded(ExplainerError):
    """Too many explanations in progress: try again shortly (429 with Retry-After)."""

    status = 429


class ShuttingDown(ExplainerError):
    """SIGTERM seen: explanations in progress finish, new ones go elsewhere."""

    status = 503


class PredictorFailed(ExplainerError):
    """The predictor answered, but with an error or an answer we cannot use."""

    status = 502

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class PredictorUnavailable(ExplainerError):
    """The predictor could not be reached, or is not ready."""

    status = 503


class PredictorTimeout(ExplainerError):
    status = 504
