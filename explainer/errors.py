"""Errors that carry their HTTP status, in a tree callers catch by category.

::

    ExplainerError                    .status, .message: one line saying what to do
    ├── ClientError          4xx      the request's fault: fix it and send it again
    │   ├── BadRequest        400
    │   ├── ModelNotFound     404
    │   └── PayloadTooLarge   413
    ├── ServiceBusy                   the explainer's state: try again later or elsewhere
    │   ├── Overloaded        429     (with Retry-After)
    │   └── ShuttingDown      503
    └── PredictorError       5xx      the predictor's fault, not the request's
        ├── PredictorFailed      502  it answered with an error, or an unusable answer
        ├── PredictorUnavailable 503  it could not be reached, or is not ready
        └── PredictorTimeout     504  it did not answer in time

The offline batch runner records a ``ClientError`` against its row and goes on, and
stops on a ``PredictorError`` (running again retries only the rows not finished).
Nothing here imports aiohttp, so the engine, the codecs and the batch runner raise the
same errors; one middleware renders them as ``{"error": message}``.
"""

from __future__ import annotations


class ExplainerError(Exception):
    status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientError(ExplainerError):
    status = 400


class BadRequest(ClientError):
    status = 400


class ModelNotFound(ClientError):
    status = 404


class PayloadTooLarge(ClientError):
    status = 413


class ServiceBusy(ExplainerError):
    status = 503


class Overloaded(ServiceBusy):
    """Too many explanations in progress: try again shortly (429 with Retry-After)."""

    status = 429


class ShuttingDown(ServiceBusy):
    """SIGTERM seen: explanations in progress finish, new ones go elsewhere."""

    status = 503


class PredictorError(ExplainerError):
    status = 502


class PredictorFailed(PredictorError):
    """The predictor answered, but with an error or an answer we cannot use."""

    status = 502

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


class PredictorUnavailable(PredictorError):
    """The predictor could not be reached, or is not ready."""

    status = 503


class PredictorTimeout(PredictorError):
    status = 504
