"""What the model's features are: each one's kind, its categories, and the type its
values travel to the predictor in.

A feature is **categorical** when the background holds strings or booleans in it, the
predictor's v2 metadata declares a BYTES or BOOL tensor for it, or
``CATEGORICAL_FEATURES`` names it; **integer** when the metadata declares an INT tensor
for it or ``INTEGER_FEATURES`` names it; **continuous** otherwise. One request never
decides a kind: a value of the wrong kind is a 400 naming the feature.

Inside the explainer every row stays float64 (n, M), so the numba kernels, the
estimators, the batching and the coalescing of calls do not change: a continuous or
integer feature holds its value, a categorical one the *code* of its category, its
index in the feature's ``categories``. Categories are append-only (sorted as the
background gives them, then in the order requests first bring them), so a code means
the same category in every request and rows of several requests can share a call. On
the way to the predictor, codes become the model's values one column at a time, by a
vectorised lookup (``Schema.tensors``): strings as BYTES, booleans as BOOL, whole
numbers as INT64, in the datatype the metadata declares.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explainer.datatypes import V2_TO_NUMPY
from explainer.errors import BadRequest

CONTINUOUS, INTEGER, CATEGORICAL = "continuous", "integer", "categorical"
# Distinct categories one feature may hold, counting those first seen in requests: the
# vocabulary lives as long as the process, so it is bounded.
MAX_CATEGORIES = 65_536
# Value types of a categorical feature: all its categories are of one.
TEXT, BOOLEAN, NUMBER = "text", "boolean", "number"
_TEXT_DATATYPE = "BYTES"
_CONTENT_TYPE = "str"  # MLServer's StringCodec: BYTES decoded to str, not bytes


def value_type(value: Any) -> str | None:
    """TEXT, BOOLEAN or NUMBER for a JSON scalar (None for null, lists, objects)."""
    if isinstance(value, bool | np.bool_):
        return BOOLEAN
    if isinstance(value, str):
        return TEXT
    if isinstance(value, int | float | np.integer | np.floating):
        return NUMBER
    return None


@dataclass
class Feature:
    name: str
    kind: str = CONTINUOUS
    datatype: str | None = None  # the v2 datatype the predictor declares for it
    content_type: str | None = None  # and its content-type parameter
    values: str = NUMBER  # categorical: the type of its categories
    categories: list[Any] = field(default_factory=list)
    _codes: dict[Any, int] = field(default_factory=dict, repr=False)
    _table: tuple[int, np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)

    def code(self, value: Any) -> int:
        """The code of a category (a new one gets the next code)."""
        found = self._codes.get(value)
        if found is not None:
            return found
        if len(self.categories) >= MAX_CATEGORIES:
            raise BadRequest(
                f"feature '{self.name}' already holds {MAX_CATEGORIES} distinct categories; "
                "send a category the background data holds"
            )
        self._codes[value] = len(self.categories)
        self.categories.append(value)
        return len(self.categories) - 1

    def lookup(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(categories as an array, each one's v2 binary form for BYTES), cached until
        the categories grow."""
        if self._table is None or self._table[0] != len(self.categories):
            if self.values == TEXT:
                array = np.empty(len(self.categories), dtype=object)
                array[:] = self.categories
                raw = np.empty(len(self.categories), dtype=object)
                raw[:] = [_length_prefixed(str(c)) for c in self.categories]
                self._table = (len(self.categories), array, raw)
            elif self.values == BOOLEAN:
                self._table = (len(self.categories), np.array(self.categories, bool), None)
            else:
                self._table = (len(self.categories), np.array(self.categories, float), None)
        return self._table[1], self._table[2]

    def wire_bytes(self, float_itemsize: int) -> int:
        """The most bytes one value takes in binary form (BYTES: its length, then it)."""
        if self.kind == CATEGORICAL and self.values == TEXT:
            return 4 + max((len(str(c).encode("utf-8")) for c in self.categories), default=0)
        if self.kind == CONTINUOUS:
            return float_itemsize
        return 8

    def wire_datatype(self, float_datatype: str) -> str:
        """The datatype this feature's tensor travels in."""
        if self.datatype in V2_TO_NUMPY or self.datatype == _TEXT_DATATYPE:
            return self.datatype
        if self.kind == CATEGORICAL and self.values == TEXT:
            return _TEXT_DATATYPE
        if self.kind == CATEGORICAL and self.values == BOOLEAN:
            return "BOOL"
        if self.kind == INTEGER or (
            self.kind == CATEGORICAL and all(float(c).is_integer() for c in self.categories)
        ):
            return "INT64"
        return float_datatype


def _length_prefixed(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return struct.pack("<I", len(encoded)) + encoded


@dataclass(frozen=True)
class ColumnTensor:
    """One feature's values for a call, as one v2 tensor."""

    name: str
    datatype: str
    values: np.ndarray  # (n,): numbers or booleans in the datatype; BYTES: str objects
    parameters: dict[str, str] | None = None
    raw: bytes | None = None  # BYTES, when asked for: each value's length, then its UTF-8


class Schema:
    """The features of the model's rows, in order."""

    def __init__(self, features: list[Feature]) -> None:
        self.features = features

    @classmethod
    def numeric(cls, names: list[str]) -> Schema:
        return cls([Feature(name) for name in names])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def kinds(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.features}

    @property
    def mixed(self) -> bool:
        """Whether any feature is not continuous (rows then travel one tensor per feature,
        in the model's own types)."""
        return any(f.kind != CONTINUOUS for f in self.features)

    @property
    def categorical(self) -> np.ndarray:
        return np.array([f.kind == CATEGORICAL for f in self.features], dtype=bool)

    @property
    def integer(self) -> np.ndarray:
        return np.array([f.kind == INTEGER for f in self.features], dtype=bool)

    def column_kinds(self) -> list[str]:
        """What each feature's column of a dataset holds: TEXT, BOOLEAN or NUMBER."""
        return [f.values if f.kind == CATEGORICAL else NUMBER for f in self.features]

    # ---- values in: requests and background columns -----------------------------------

    def encode(self, rows: np.ndarray, where: str) -> np.ndarray:
        """Request rows (n, M) — float64, or an object array of JSON scalars — as the
        explainer's float64 rows; a value of the wrong kind is a 400 naming the feature
        (``where``: the request field the rows came from, "" for none)."""
        if rows.dtype != object and not self.mixed:
            return rows
        out = np.empty(rows.shape, dtype=np.float64)
        for j, feature in enumerate(self.features):
            out[:, j] = self._encode_column(feature, rows[:, j], where)
        return out

    def _encode_column(self, feature: Feature, column: np.ndarray, where: str) -> np.ndarray:
        if feature.kind == CATEGORICAL:
            codes = np.empty(len(column))
            for r, value in enumerate(column.tolist()):
                codes[r] = feature.code(_category(feature, value, _at(where, r)))
            return codes
        if column.dtype != object:
            values = column.astype(np.float64)
        else:
            values = np.empty(len(column))
            for r, value in enumerate(column.tolist()):
                if value_type(value) != NUMBER:
                    raise BadRequest(_not_a_number(feature, value, _at(where, r)))
                values[r] = value
        bad = ~np.isfinite(values)
        if feature.kind == INTEGER:
            bad |= values != np.round(values)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            wanted = "a whole number" if feature.kind == INTEGER else "a finite number"
            raise BadRequest(
                f"{_at(where, r)}feature '{feature.name}' is {column[r]!r}; it takes {wanted}"
            )
        return values

    def encode_background(self, j: int, column: np.ndarray) -> np.ndarray:
        """Codes (or values) of one background column (numbers, booleans or strings)."""
        feature = self.features[j]
        if feature.kind != CATEGORICAL:
            return np.asarray(column, dtype=np.float64)
        uniques, inverse = np.unique(column, return_inverse=True)
        codes = np.array([feature.code(_category(feature, v, "background: ")) for v in uniques])
        return codes[inverse].astype(np.float64) if len(codes) else np.zeros(0)

    # ---- values out: tensors for the predictor ------------------------------------------

    def tensors(
        self, rows: np.ndarray, float_datatype: str, raw: bool = False
    ) -> list[ColumnTensor]:
        """One tensor per feature for ``rows`` (n, M) in the model's own types; ``raw``:
        BYTES tensors also in their v2 binary form (gRPC's raw contents)."""
        out = []
        for j, feature in enumerate(self.features):
            datatype = feature.wire_datatype(float_datatype)
            column = rows[:, j]
            binary = None
            if feature.kind == CATEGORICAL:
                categories, prefixed = feature.lookup()
                codes = column.astype(np.intp)
                values = categories[codes]
                if datatype == _TEXT_DATATYPE:
                    if feature.values != TEXT:  # numbers or booleans declared as BYTES
                        values = np.array([_text(v) for v in categories], dtype=object)[codes]
                        prefixed = np.array(
                            [_length_prefixed(_text(v)) for v in categories], dtype=object
                        )
                    if raw and prefixed is not None:
                        binary = b"".join(prefixed[codes].tolist())
                else:
                    values = values.astype(V2_TO_NUMPY[datatype])
            else:  # (a feature declared BYTES or BOOL is categorical: ``adopt``)
                values = np.ascontiguousarray(column, dtype=V2_TO_NUMPY[datatype])
            parameters = None
            if datatype == _TEXT_DATATYPE:
                parameters = {"content_type": feature.content_type or _CONTENT_TYPE}
            out.append(ColumnTensor(feature.name, datatype, values, parameters, binary))
        return out

    def values(self, rows: np.ndarray) -> list[list[Any]]:
        """Rows as lists of the model's values (JSON scalars): KServe v1 ``instances``."""
        columns = [t.values.tolist() for t in self.tensors(rows, "FP64")]
        return [list(row) for row in zip(*columns, strict=True)]

    def shown(self, j: int, column: np.ndarray) -> list[Any]:
        """One feature's values as a person reads them (categories, not codes)."""
        feature = self.features[j]
        if feature.kind != CATEGORICAL:
            return np.asarray(column, dtype=np.float64).tolist()
        categories, _ = feature.lookup()
        return list(categories[np.asarray(column, dtype=np.intp)].tolist())


def _at(where: str, row: int) -> str:
    """Where a value is, as a message's opening: "'instances' row 3, " ("" for none)."""
    return f"'{where}' row {row}, " if where else ""


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _category(feature: Feature, value: Any, where: str) -> Any:
    """A categorical value, checked against the feature's value type."""
    kind = value_type(value)
    if kind is None or (kind == NUMBER and not math.isfinite(float(value))):
        raise BadRequest(f"{where}feature '{feature.name}' is {value!r}; send a category")
    if kind != feature.values:
        example = f" such as {feature.categories[0]!r}" if feature.categories else ""
        raise BadRequest(
            f"{where}feature '{feature.name}' is {value!r}, but its categories are "
            f"{_described[feature.values]}; send one{example}"
        )
    if kind == NUMBER:
        return float(value)
    if kind == BOOLEAN:
        return bool(value)
    return value


_described = {TEXT: "strings", BOOLEAN: "true or false", NUMBER: "numbers"}


def _not_a_number(feature: Feature, value: Any, where: str) -> str:
    hint = (
        "; if it is categorical, add it to CATEGORICAL_FEATURES"
        if value_type(value) in (TEXT, BOOLEAN)
        else ""
    )
    return (
        f"{where}feature '{feature.name}' is {value!r}; it is {feature.kind} and takes a "
        f"number{hint}"
    )


# ---- where kinds come from ------------------------------------------------------------------


def from_background(
    names: list[str],
    background: np.ndarray | None,
    categorical: list[str] | None = None,
    integer: list[str] | None = None,
) -> tuple[Schema, np.ndarray | None]:
    """The schema the background and the settings (``CATEGORICAL_FEATURES``,
    ``INTEGER_FEATURES``) give, and the background as the explainer's float64 rows.
    Raises ValueError naming the setting or the column at fault."""
    for setting, listed in (("CATEGORICAL_FEATURES", categorical), ("INTEGER_FEATURES", integer)):
        unknown = sorted(set(listed or ()) - set(names))
        if unknown:
            raise ValueError(
                f"{setting} names {unknown}, which are not features; features: {names}"
            )
    features = []
    for j, name in enumerate(names):
        column = None if background is None else background[:, j]
        found = NUMBER if column is None else _background_type(column, name)
        feature = Feature(name)
        if found != NUMBER or name in (categorical or ()):
            feature.kind, feature.values = CATEGORICAL, found
            if name in (integer or ()):
                raise ValueError(
                    f"INTEGER_FEATURES names '{name}', but the background holds "
                    f"{_described[found]} in it: it is categorical"
                )
        elif name in (integer or ()):
            feature.kind = INTEGER
            if column is not None and not _integral(column):
                raise ValueError(
                    f"INTEGER_FEATURES names '{name}', but the background holds fractions in it"
                )
        features.append(feature)
    schema = Schema(features)
    if background is None:
        return schema, None
    if background.dtype != object and not schema.mixed:
        return schema, np.ascontiguousarray(background, dtype=np.float64)
    # Categories sorted, so that codes do not depend on the order of the rows.
    rows = np.empty(background.shape, dtype=np.float64)
    for j in range(len(names)):
        rows[:, j] = schema.encode_background(j, background[:, j])
    return schema, rows


def _background_type(column: np.ndarray, name: str) -> str:
    if column.dtype != object:
        return NUMBER
    types = {value_type(v) for v in column.tolist()}
    if len(types) != 1 or None in types:
        raise ValueError(
            f"background column '{name}' mixes {sorted(str(t) for t in types)} values; "
            "a column holds numbers, booleans or strings throughout"
        )
    return str(types.pop())


def _integral(column: np.ndarray) -> bool:
    values = np.asarray(column, dtype=np.float64)
    return bool((values == np.round(values)).all())


@dataclass(frozen=True)
class Declared:
    """What a predictor's v2 metadata says of one feature's tensor."""

    name: str
    datatype: str | None
    content_type: str | None = None


def adopt(schema: Schema, declared: list[Declared], background: np.ndarray | None) -> bool:
    """Take the datatypes the predictor declares per feature: a BYTES or BOOL tensor makes
    a feature categorical, an INT tensor integer (where the background's values are whole
    numbers). ``background`` (the explainer's rows) is re-encoded in place for a feature
    that became categorical. Returns whether any kind changed."""
    by_name = {d.name: d for d in declared}
    changed = False
    for j, feature in enumerate(schema.features):
        found = by_name.get(feature.name)
        if found is None:
            continue
        feature.datatype, feature.content_type = found.datatype, found.content_type
        datatype = found.datatype or ""
        if feature.kind != CATEGORICAL and datatype in (_TEXT_DATATYPE, "BOOL"):
            feature.kind, feature.values, changed = CATEGORICAL, NUMBER, True
            if background is not None:
                background[:, j] = schema.encode_background(j, background[:, j])
        elif (
            feature.kind == CONTINUOUS
            and datatype.startswith(("INT", "UINT"))
            and (background is None or _integral(background[:, j]))
        ):
            feature.kind, changed = INTEGER, True
    return changed
