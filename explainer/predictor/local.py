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
from explainer.predictor.metadata import PROBA_OUTPUT, ModelMetadata
from explainer.predictor.transport import Layout, Transport, checked_scores


class LocalModel(Transport):
    def __init__(self, path: str, model_name: str = "model") -> None:
        super().__init__(f"file://{path}", model_name)
        # Loading a pickle runs its code: only ever a file the user names on the command line.
        self.model: Any = joblib.load(Path(path))
        self.default_output = PROBA_OUTPUT if hasattr(self.model, "predict_proba") else "predict"
        self._columns: tuple[str, ...] | None = None

    async def fetch_metadata(self) -> ModelMetadata:
        names = getattr(self.model, "feature_names_in_", None)
        features = getattr(self.model, "n_features_in_", None)
        self._columns = tuple(str(n) for n in names) if names is not None else None
        return ModelMetadata(
            features=int(features) if features is not None else None,
            feature_names=self._columns,
        )

    async def ready(self) -> bool:
        return True

    async def score(self, rows: np.ndarray, output: str | None, layout: Layout) -> np.ndarray:
        method = getattr(self.model, output or "predict", None)
        if method is None:
            raise PredictorFailed(f"the model has no method '{output}'")
        table: Any = rows
        if layout.schema is not None and layout.schema.mixed and layout.columns is not None:
            import pandas as pd  # mixed features: a table of the model's own types

            table = pd.DataFrame({t.name: t.values for t in layout.tensors(rows)})
        elif self._columns is not None:  # fitted on a table: give it one, with its names
            import pandas as pd

            table = pd.DataFrame(rows, columns=list(self._columns))
        try:
            values = await asyncio.to_thread(method, table)
        except (ValueError, TypeError) as exc:
            raise PredictorFailed(f"the model could not score the rows: {exc}") from None
        return checked_scores(np.asarray(values, dtype=np.float64), len(rows))
