"""The explainer's own request and response bodies.

Decoding is where bad input becomes a clear 400: every message names the field at
fault and what to send instead. Three request shapes are accepted, told apart by their
top-level key: KServe v1 ``instances``, Seldon/TrustyAI ``data.ndarray`` (with optional
``names``) and the Open Inference Protocol's ``inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import BadRequest
from explainer.settings import EXPLAINER_TYPES, ExplainerType
from explainers.saliencies import Saliencies

ROW_KEYS = ("instances", "data", "inputs")
EXAMPLE = '{"instances": [[1.0, 2.0, 3.0]]}'


class ExplainParameters(BaseModel):
    """Per-request overrides, within the configured limits."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    explainer: ExplainerType | None = None
    lime_samples: int | None = Field(None, ge=10)
    shap_samples: int | None = Field(None, ge=4)
    seed: int | None = Field(None, ge=0, lt=2**63)
    target: list[int | str] | None = None
    # The largest acceptable 95% half-width: sample in rounds until every score meets it.
    tolerance: float | None = Field(None, gt=0, allow_inf_nan=False)
    # How a text or prompt is cut into segments: "words" (default), "sentences", or for
    # chat messages "messages".
    segments: Literal["words", "sentences", "messages"] | None = None

    @field_validator("explainer", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("target", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, (int, str)) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class RowsRequest:
    """Rows decoded from any accepted body, with names when the body gave them."""

    # (n, M) float64, finite; or, where the body holds strings or booleans, an object
    # array of JSON scalars (``explainer.features`` encodes it for the model's features);
    # or (n,) object: texts
    rows: np.ndarray
    names: list[str] | None
    parameters: ExplainParameters
    field: str = "instances"  # where in the body the rows were, for messages
    encoded: bool = False  # rows already in the explainer's own form (background rows)


PROMPT_KEYS = ("prompt", "messages")
DEFAULT_MAX_TOKENS = 64  # a response to generate, when the body gives none


@dataclass(frozen=True)
class PromptRequest:
    """A generative model's prompt (a text, or chat messages) and the response to explain
    — None: generate it first, up to ``max_tokens``."""

    prompt: str | None
    messages: list[tuple[str, str]] | None
    response: str | None
    max_tokens: int
    parameters: ExplainParameters
    field: str = "prompt"


def decode_request(body: bytes) -> RowsRequest | PromptRequest:
    """Rows or texts (``instances``, ``data``, ``inputs``), or a prompt (``prompt``,
    ``messages``), by the body's top-level keys."""
    payload = _load_json(body)
    if any(key in payload for key in PROMPT_KEYS):
        return _prompt_request(payload)
    return _rows_request(payload, body)


def decode_rows_request(body: bytes) -> RowsRequest:
    return _rows_request(_load_json(body), body)


def _prompt_request(payload: dict[str, Any]) -> PromptRequest:
    present = [key for key in PROMPT_KEYS if key in payload]
    if len(present) != 1:
        raise BadRequest("send 'prompt' (a text) or 'messages' (a chat), not both")
    key = present[0]
    unknown = sorted(set(payload) - {key, "response", "max_tokens", "parameters", "id"})
    if unknown:
        raise BadRequest(
            f"unknown top-level key(s) {unknown}; allowed beside '{key}': 'response', "
            "'max_tokens', 'parameters', 'id'"
        )
    prompt, messages = None, None
    if key == "prompt":
        prompt = payload["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest('\'prompt\' must be a non-empty string, e.g. {"prompt": "Why?"}')
    else:
        messages = _messages(payload["messages"])
    response = payload.get("response")
    if response is not None and (not isinstance(response, str) or not response):
        raise BadRequest("'response' must be a non-empty string, or left out to generate it")
    max_tokens = payload.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest(f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    parameters = _parameters(payload.get("parameters"))
    return PromptRequest(prompt, messages, response, max_tokens, parameters, field=key)


def _messages(value: Any) -> list[tuple[str, str]]:
    example = '[{"role": "user", "content": "Why?"}]'
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'messages' must be a non-empty list of messages, e.g. {example}")
    out = []
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or set(message) != {"role", "content"}
            or not all(isinstance(message[k], str) for k in ("role", "content"))
        ):
            raise BadRequest(
                f"'messages[{i}]' must be an object with string 'role' and 'content', e.g. "
                f"{example}"
            )
        out.append((message["role"], message["content"]))
    return out


def _rows_request(payload: dict[str, Any], body: bytes) -> RowsRequest:
    present = [key for key in ROW_KEYS if key in payload]
    if len(present) != 1:
        found = ", ".join(sorted(map(str, payload))) or "none"
        raise BadRequest(
            "request body must have exactly one of the keys 'instances', 'data' or 'inputs' "
            f"(found: {found}); e.g. {EXAMPLE}"
        )
    key = present[0]
    unknown = sorted(set(payload) - {key, "parameters", "id"})
    if unknown:
        raise BadRequest(
            f"unknown top-level key(s) {unknown}; allowed beside '{key}': 'parameters', 'id'"
        )
    # orjson's booleans would silently become numbers in a numeric array: only a body
    # with neither word in it takes the all-numbers path without a look at every value.
    typed = b"true" in body or b"false" in body
    if key == "instances":
        rows, names = _from_instances(payload[key], typed)
        where = "instances"
    elif key == "data":
        rows, names = _from_ndarray(payload[key], typed)
        where = "data.ndarray"
    else:
        rows, names = _from_inputs(payload[key])
        where = "inputs"
    parameters = _parameters(payload.get("parameters"))
    return RowsRequest(rows=rows, names=names, parameters=parameters, field=where)


def _load_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise BadRequest(f"request body is empty; send a JSON object such as {EXAMPLE}")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON ({exc}); NaN and Infinity are not JSON numbers"
        ) from None
    if not isinstance(payload, dict):
        raise BadRequest(f"request body must be a JSON object such as {EXAMPLE}")
    return payload


def _parameters(value: Any) -> ExplainParameters:
    if value is None:
        return ExplainParameters()
    if not isinstance(value, dict):
        raise BadRequest("'parameters' must be a JSON object, e.g. {\"seed\": 1}")
    try:
        return ExplainParameters.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        allowed = ", ".join(ExplainParameters.model_fields)
        if first["type"] == "extra_forbidden":
            raise BadRequest(f"unknown parameter 'parameters.{where}'; known: {allowed}") from None
        if where.startswith("explainer"):
            choices = ", ".join(EXPLAINER_TYPES)
            raise BadRequest(
                f"'parameters.explainer' must be one of {choices}, got {first.get('input')!r}"
            ) from None
        raise BadRequest(f"'parameters.{where}': {first['msg']}") from None


def _from_instances(value: Any, typed: bool) -> tuple[np.ndarray, list[str] | None]:
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'instances' must be a non-empty list of rows, e.g. {EXAMPLE}")
    if any(isinstance(item, str) for item in value):  # texts: {"instances": ["a text"]}
        return _texts(value, "instances"), None
    if all(isinstance(row, dict) for row in value):
        names = [str(name) for name in value[0]]
        for i, row in enumerate(value):
            if list(row) != names:
                raise BadRequest(
                    f"'instances[{i}]' has keys {sorted(row)}, but 'instances[0]' has "
                    f"{sorted(names)}; every row needs the same feature names"
                )
        return _matrix([list(row.values()) for row in value], "instances", typed, names), names
    if any(isinstance(row, dict) for row in value):
        raise BadRequest("'instances' mixes objects and lists; use one form for every row")
    return _matrix(value, "instances", typed), None


def _from_ndarray(value: Any, typed: bool) -> tuple[np.ndarray, list[str] | None]:
    if not isinstance(value, dict) or "ndarray" not in value:
        raise BadRequest(
            "'data' must be an object with an 'ndarray' list of rows, e.g. "
            '{"data": {"ndarray": [[1.0, 2.0]], "names": ["a", "b"]}}'
        )
    unknown = sorted(set(value) - {"ndarray", "names"})
    if unknown:
        raise BadRequest(f"unknown key(s) {unknown} in 'data'; allowed: 'ndarray', 'names'")
    rows = _matrix(value["ndarray"], "data.ndarray", typed)
    names = value.get("names")
    if names is None:
        return rows, None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("'data.names' must be a list of strings, one per feature")
    if len(names) != rows.shape[1]:
        raise BadRequest(
            f"'data.names' has {len(names)} names but rows have {rows.shape[1]} features"
        )
    return rows, names


def _from_inputs(value: Any) -> tuple[np.ndarray, list[str] | None]:
    if not isinstance(value, list) or not value:
        raise BadRequest("'inputs' must be a non-empty list of v2 tensors")
    tensors = [_tensor(tensor, i, len(value) > 1) for i, tensor in enumerate(value)]
    if len(tensors) == 1:
        return tensors[0][1], None
    # One tensor per feature (MLServer's pandas codec): the tensors' names are the names.
    names = [name for name, _ in tensors]
    if len(set(names)) != len(names):
        raise BadRequest("'inputs' has two tensors of the same name; name each feature once")
    lengths = {column.shape[0] for _, column in tensors}
    if len(lengths) != 1:
        raise BadRequest(
            f"'inputs' tensors have {sorted(lengths)} rows; each feature's tensor needs one "
            "value per row"
        )
    columns = [column[:, 0] for _, column in tensors]
    if all(column.dtype != object for column in columns):
        return np.ascontiguousarray(np.column_stack(columns)), names
    rows = np.empty((lengths.pop(), len(columns)), dtype=object)
    for j, column in enumerate(columns):
        rows[:, j] = column
    return rows, names


_TENSOR_KEYS = ("name", "shape", "datatype", "data")


def _tensor(tensor: Any, i: int, per_feature: bool) -> tuple[str, np.ndarray]:
    """(name, values): a single tensor's rows (n, M), or one feature's column (n, 1)."""
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise BadRequest(f"'{where}' must be an object with 'name', 'shape', 'datatype', 'data'")
    missing = [k for k in _TENSOR_KEYS if k not in tensor]
    if missing:
        raise BadRequest(f"'{where}' is missing {missing}")
    datatype = tensor["datatype"]
    if datatype == "BYTES" and not per_feature:
        return _text_tensor(tensor, where)
    scalar = per_feature and datatype in ("BYTES", "BOOL")
    if not isinstance(datatype, str) or (
        not scalar and (datatype not in V2_TO_NUMPY or datatype == "BOOL")
    ):
        numeric = ", ".join(t for t in V2_TO_NUMPY if t != "BOOL")
        raise BadRequest(
            f"'{where}.datatype' must be a numeric type ({numeric}), or BYTES or BOOL in a "
            f"tensor per feature, got {datatype!r}"
        )
    shape = tensor["shape"]
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or (per_feature and len(shape) == 2 and shape[1] != 1)
    ):
        wanted = "[rows] or [rows, 1]" if per_feature else "[rows, features] or [features]"
        raise BadRequest(f"'{where}.shape' must be {wanted}, got {shape!r}")
    name = tensor["name"]
    if not isinstance(name, str) or not name:
        raise BadRequest(f"'{where}.name' must be a non-empty string")
    data = tensor["data"]
    if not isinstance(data, list):
        raise BadRequest(f"'{where}.data' must be a list of values")
    expected = int(np.prod(shape))
    if scalar:
        values = _flat_scalars(data, f"{where}.data", str if datatype == "BYTES" else bool)
    else:
        values = _numbers(data, f"{where}.data").reshape(-1)
    if values.size != expected:
        raise BadRequest(
            f"'{where}.data' has {values.size} values but shape {shape} needs {expected}"
        )
    if per_feature:
        rows = values.reshape(-1, 1)
    else:
        rows = values.reshape(shape if len(shape) == 2 else [1, shape[0]])
    if rows.dtype == object:
        return name, rows
    return name, _finite_rows(rows, f"{where}.data")


def _text_tensor(tensor: dict[str, Any], where: str) -> tuple[str, np.ndarray]:
    """One BYTES tensor of texts, of shape [n] or [n, 1]."""
    shape = tensor["shape"]
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise BadRequest(
            f"'{where}': a tensor of BYTES datatype holds texts, of shape [n] or [n, 1]; "
            f"got {shape!r} (send a tensor per feature for rows with strings in them)"
        )
    data = tensor["data"]
    if isinstance(data, list) and data and all(isinstance(v, list) for v in data):
        data = [v for row in data for v in row]
    texts = _texts(data, f"{where}.data")
    if len(texts) != shape[0]:
        raise BadRequest(
            f"'{where}.data' has {len(texts)} texts but shape {shape} needs {shape[0]}"
        )
    return str(tensor.get("name") or "text"), texts


def _texts(value: Any, where: str) -> np.ndarray:
    """(n,) object array of texts; each must be a string with a non-space character."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'{where}' must be a non-empty list of texts")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise BadRequest(
                f"'{where}[{i}]' is {type(text).__name__}, not a string; a request holds texts "
                'or rows, not both: {"instances": ["a text", "another"]}'
            )
        if not text.strip():
            raise BadRequest(f"'{where}[{i}]' is empty or only whitespace; send a text to explain")
    out = np.empty(len(value), dtype=object)
    out[:] = value
    return out


def _flat_scalars(data: list[Any], where: str, kind: type) -> np.ndarray:
    nested = bool(data) and all(isinstance(v, list) for v in data)
    values = [v for row in data for v in row] if nested else data
    out = np.empty(len(values), dtype=object)
    for r, v in enumerate(values):
        if not isinstance(v, kind):
            wanted = "a string" if kind is str else "true or false"
            raise BadRequest(f"'{where}' value {r} is {v!r}; each value must be {wanted}")
        out[r] = v
    return out


def _numbers(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list):
        raise BadRequest(f"'{where}' must be a list of numbers")
    try:
        array = np.asarray(value)
    except ValueError:
        raise BadRequest(f"'{where}' is ragged: every row must have the same length") from None
    if array.dtype.kind not in "iuf":
        raise BadRequest(
            f"'{where}' must hold only numbers (no strings, booleans, nulls or nested objects)"
        )
    return array.astype(np.float64)


def _matrix(
    value: Any, where: str, typed: bool = False, names: list[str] | None = None
) -> np.ndarray:
    """Rows of a list of lists: float64 when every value is a number, else an object
    array of JSON scalars (strings, booleans, numbers) for the model's features to
    check (``explainer.features``)."""
    if not isinstance(value, list):
        raise BadRequest(f"'{where}' must be a list of rows, e.g. [[1.0, 2.0]]")
    try:
        array = np.asarray(value)
    except ValueError:
        raise BadRequest(f"'{where}' is ragged: every row must have the same length") from None
    if array.ndim == 1:
        raise BadRequest(f"'{where}' must be a list of rows, e.g. [[1.0, 2.0]], not one flat list")
    if array.ndim > 2:
        raise BadRequest(f"'{where}' must be a list of rows of values, got {array.ndim} levels")
    if array.dtype.kind in "iuf" and not typed:
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise BadRequest(f"'{where}' has empty rows; each row needs one value per feature")
        return _finite_rows(array.astype(np.float64), where)
    return _scalars(value, where, names)


def _scalars(value: list[Any], where: str, names: list[str] | None) -> np.ndarray:
    width = len(value[0]) if value and isinstance(value[0], list) else 0
    if not width:
        raise BadRequest(f"'{where}' has empty rows; each row needs one value per feature")
    out = np.empty((len(value), width), dtype=object)
    numbers = True
    for r, row in enumerate(value):
        if not isinstance(row, list) or len(row) != width:
            raise BadRequest(f"'{where}' is ragged: every row must have the same length")
        for c, v in enumerate(row):
            if isinstance(v, bool | str):
                numbers = False
            elif not isinstance(v, int | float):
                what = "null" if v is None else "a nested list or object"
                feature = f"'{names[c]}'" if names else str(c)
                raise BadRequest(
                    f"'{where}' row {r}, feature {feature} is {what}; each value must be a "
                    "number, a string or a boolean"
                )
        out[r] = row
    if numbers:
        return _finite_rows(out.astype(np.float64), where)
    return out


def _finite_rows(rows: np.ndarray, where: str) -> np.ndarray:
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise BadRequest(f"'{where}' has no values; each row needs one value per feature")
    bad = ~np.isfinite(rows)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise BadRequest(f"'{where}' row {r}, feature {c} is not a finite number")
    return np.ascontiguousarray(rows)


# ---- responses ---------------------------------------------------------------------------


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class RowExplanation:
    """One row's explanations, keyed by explainer type (``LIME`` before ``SHAP``)."""

    saliencies: dict[str, Saliencies]
    facts: dict[str, dict[str, Any]]  # per explainer: e.g. the background used
    # A text's or prompt's segments, as their items describe them ({"name", "span"}, and
    # "message" in a chat); None for tabular rows, whose features are the request's
    segments: tuple[dict[str, Any], ...] | None = None

    def items(self, features: list[str]) -> list[dict[str, Any]]:
        """Per segment, what its saliency items say besides score and confidence."""
        if self.segments is None:
            return [{"name": name} for name in features]
        return list(self.segments)


def saliency_items(
    scores: np.ndarray, confidence: np.ndarray, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Items by falling |score|: each segment's ``items`` entry, its score and confidence."""
    order = np.argsort(-np.abs(scores), kind="stable")
    return [
        {**items[j], "score": float(scores[j]), "confidence": float(confidence[j])} for j in order
    ]


def _saliency_map(s: Saliencies, items: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    return {
        out: saliency_items(s.scores[k], s.confidence[k], items) for k, out in enumerate(outputs)
    }


def _block(
    s: Saliencies, facts: dict[str, Any], items: list[dict[str, Any]], outputs: list[str]
) -> dict[str, Any]:
    block: dict[str, Any] = {"saliencies": _saliency_map(s, items, outputs)}
    for name, values in s.per_output.items():
        block[name] = {out: float(values[k]) for k, out in enumerate(outputs)}
    settled = s.settled()
    block["settled"] = {out: int(settled[k]) for k, out in enumerate(outputs)}
    block.update(s.facts)
    block.update(facts)
    return block


def explanation_body(
    row: RowExplanation, features: list[str], outputs: list[str]
) -> dict[str, Any]:
    """One row's explanation in the documented (``kserve``) shape, without a timestamp."""
    items = row.items(features)
    return {
        kind: _block(s, row.facts.get(kind, {}), items, outputs)
        for kind, s in row.saliencies.items()
    }


def encode_explanations(
    rows: list[RowExplanation], features: list[str], outputs: list[str], response_format: str
) -> bytes:
    now = timestamp()
    if response_format == "trustyai":
        bodies = [
            {
                "saliencies": {
                    kind: _saliency_map(s, row.items(features), outputs)
                    for kind, s in row.saliencies.items()
                }
            }
            for row in rows
        ]
        head: dict[str, Any] = {"timestamp": now, "type": "explanation"}
        body = {**head, **bodies[0]} if len(bodies) == 1 else {**head, "explanations": bodies}
    else:
        blocks = [explanation_body(row, features, outputs) for row in rows]
        if len(blocks) == 1:
            body = {"timestamp": now, **blocks[0]}
        else:
            body = {"timestamp": now, "explanations": blocks}
    return orjson.dumps(body)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
