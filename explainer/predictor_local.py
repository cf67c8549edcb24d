"""A scikit-learn (or any joblib-pickled) model scored in-process, for offline batch runs
without a model server. Same interface as the network clients: probabilities where the
model offers them (``predict_proba``), else ``predict``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from explainer.errors import PredictorFailed
from explainer.predictor import (
    PROBA_OUTPUT,
    CallObserver,
    ModelMetadata,
    Predictor,
    PredictorConfig,
    checked_scores,
)


class LocalPredictor(Predictor):
    def __init__(
        self, path: str, config: PredictorConfig, observe: CallObserver | None = None
    ) -> None:
        super().__init__(config, observe)
        # Loading a pickle runs its code: only ever a file the user names on the command line.
        self.model: Any = joblib.load(Path(path))
        offered = hasattr(self.model, "predict_proba")
        self._output = config.output or (PROBA_OUTPUT if offered else "predict")
        self._output_settled = True

    async def fetch_metadata(self) -> ModelMetadata:
        names = getattr(self.model, "feature_names_in_", None)
        features = getattr(self.model, "n_features_in_", None)
        return ModelMetadata(
            features=int(features) if features is not None else None,
            feature_names=tuple(str(n) for n in names) if names is not None else None,
        )

    async def ready(self) -> bool:
        return True

    async def score(self, rows: np.ndarray, output: str | None) -> np.ndarray:
        method = getattr(self.model, output or "predict", None)
        if method is None:
            raise PredictorFailed(f"the model has no method '{output}'")
        named = self.metadata.feature_names
        if named is not None:  # fitted on a table: give it one, with its column names
            import pandas as pd

            rows = pd.DataFrame(rows, columns=list(named))
        try:
            values = await asyncio.to_thread(method, rows)
        except (ValueError, TypeError) as exc:
            raise PredictorFailed(f"the model could not score the rows: {exc}") from None
        return checked_scores(np.asarray(values, dtype=np.float64), len(rows))
