"""What the predictor says about the model (all of it optional in the protocols)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from explainer.features import Declared

# The output name under which model servers offer class probabilities.
PROBA_OUTPUT = "predict_proba"


@dataclass(frozen=True)
class ModelMetadata:
    """A model may declare one input tensor per feature (each one column wide): then those
    tensors' names are the feature names, their datatypes say the features' kinds
    (``explainer.features``), and rows travel as one tensor per column."""

    input_name: str | None = None
    input_datatype: str | None = None
    input_rank: int | None = None  # dimensions of the one input tensor ([-1]: 1)
    features: int | None = None
    outputs: tuple[str, ...] = ()
    feature_names: tuple[str, ...] | None = None  # one input tensor per feature
    # with each one's datatype and content-type parameter
    feature_types: tuple[Declared, ...] = ()
    output_widths: dict[str, int | None] = field(default_factory=dict)  # declared columns

    @classmethod
    def from_v2(cls, body: dict[str, Any]) -> ModelMetadata:
        inputs = body.get("inputs") or []
        declared = [o for o in body.get("outputs") or [] if o.get("name")]
        outputs = tuple(str(o["name"]) for o in declared)
        widths = {str(o["name"]): _width(o.get("shape")) for o in declared}
        if not inputs:
            return cls(outputs=outputs, output_widths=widths)
        first = inputs[0]
        if len(inputs) > 1 and all(_width(i.get("shape")) == 1 for i in inputs):
            return cls(
                input_datatype=first.get("datatype"),
                features=len(inputs),
                outputs=outputs,
                feature_names=tuple(str(i.get("name")) for i in inputs),
                feature_types=tuple(_declared(i) for i in inputs),
                output_widths=widths,
            )
        width = _width(first.get("shape"))
        return cls(
            input_name=first.get("name"),
            input_datatype=first.get("datatype"),
            input_rank=len(first.get("shape") or []) or None,
            features=width if width and len(first.get("shape") or []) >= 2 else None,
            outputs=outputs,
            output_widths=widths,
        )

    def output_label(self, output: str | None) -> str | None:
        """The declared name of a one-column output (``output`` or, if None, the first)."""
        name = output if output is not None else (self.outputs[0] if self.outputs else None)
        return name if name is not None and self.output_widths.get(name) == 1 else None


def _declared(tensor: dict[str, Any]) -> Declared:
    parameters = tensor.get("parameters") or {}
    content_type = parameters.get("content_type") if isinstance(parameters, dict) else None
    datatype = tensor.get("datatype")
    return Declared(
        str(tensor.get("name")),
        str(datatype) if datatype else None,
        str(content_type) if content_type else None,
    )


def _width(shape: Any) -> int | None:
    """Columns per row of a declared tensor shape: [-1] and [-1, 1] are one column."""
    dims = [int(d) for d in shape or []]  # gRPC's JSON metadata has int64 strings
    if len(dims) == 1:
        return 1
    return dims[-1] if len(dims) >= 2 and dims[-1] > 0 else None
