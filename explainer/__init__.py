"""The explainer service: HTTP, payload codecs, predictor clients, settings and CLI."""

__version__ = "0.1.0"
