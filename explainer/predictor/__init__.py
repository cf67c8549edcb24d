"""Talking to the predictor: one client (``client.PredictorClient``: batching,
coalescing, concurrency, output choice) over one transport per protocol (``rest``: v2
and v1; ``grpc``: v2; ``local``: a joblib model in-process), with one retry policy
(``retry``) for every transport."""

from explainer.predictor.client import CallObserver, ClientPolicy, PredictorClient
from explainer.predictor.metadata import ModelMetadata
from explainer.predictor.scoring import Scoring
from explainer.predictor.transport import Layout, Transport

__all__ = [
    "CallObserver",
    "ClientPolicy",
    "Layout",
    "ModelMetadata",
    "PredictorClient",
    "Scoring",
    "Transport",
]
