"""The OpenAPI 3.1 description of the explainer's own routes, served at ``/openapi.json``.

Request bodies follow KServe's v1 ``instances``, the Seldon-style ``data.ndarray`` and the
Open Inference Protocol's ``inputs``; ``parameters`` is generated from the pydantic model
the server validates with, so the document and the validation cannot drift apart. Every
4xx and 5xx body is ``{"error": "..."}``.
"""

from __future__ import annotations

from typing import Any

from explainer import __version__
from explainer.payloads import ExplainParameters

# A feature's value: a number, or for a categorical feature a string or a boolean.
VALUE = {"type": ["number", "string", "boolean"]}
ROW = {"type": "array", "items": VALUE, "minItems": 1}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "minLength": 1}},
}
SALIENCY = {
    "type": "object",
    "required": ["name", "score", "confidence"],
    "properties": {
        "name": {"type": "string"},
        "score": {"type": "number"},
        "confidence": {"type": "number", "minimum": 0},
        # a text's segment: its [start, end) character offsets in the text
        "span": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    },
}
BLOCK = {
    "type": "object",
    "required": ["saliencies"],
    "properties": {
        "saliencies": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Saliency"},
            },
        },
        # per output: how many leading features, up to 5, are told apart from the rest
        "settled": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 5},
        },
    },
}


def _rows_request() -> dict[str, Any]:
    parameters = ExplainParameters.model_json_schema()
    return {
        "type": "object",
        "oneOf": [
            {
                "required": ["instances"],
                "properties": {
                    "instances": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "oneOf": [
                                ROW,
                                {"type": "object", "additionalProperties": VALUE},
                                {"type": "string", "minLength": 1, "description": "a text"},
                            ]
                        },
                    }
                },
            },
            {
                "required": ["data"],
                "properties": {
                    "data": {
                        "type": "object",
                        "required": ["ndarray"],
                        "properties": {
                            "ndarray": {"type": "array", "minItems": 1, "items": ROW},
                            "names": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                },
            },
            {
                "required": ["inputs"],
                "properties": {
                    "inputs": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["name", "shape", "datatype", "data"],
                            "properties": {
                                "name": {"type": "string"},
                                "shape": {"type": "array", "items": {"type": "integer"}},
                                "datatype": {"type": "string"},
                                "data": {"type": "array"},
                            },
                        },
                    }
                },
            },
        ],
        "properties": {
            "id": {"type": "string"},
            "parameters": {k: v for k, v in parameters.items() if k != "$defs"},
        },
        "example": {"instances": [[0.93, 1.57, 3.14, 1.43, 0.76]], "parameters": {"seed": 1}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "the body is not an accepted request; the error names the field and the fix",
        404: "no such route, or another model's name",
        405: "method not allowed",
        413: "over a limit: MAX_BODY_BYTES, MAX_ROWS, MAX_FEATURES or a samples cap",
        429: "MAX_IN_FLIGHT explanations in progress; retry after Retry-After seconds",
        502: "the predictor answered with an error or an unusable body",
        503: "the predictor is unreachable, or the explainer is not ready or is stopping",
        504: "the predictor did not answer within PREDICTOR_TIMEOUT",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {str(s): {"description": reasons[s], "content": error} for s in statuses}


def _status(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(model_name: str) -> dict[str, Any]:
    rows = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RowsRequest"}}},
    }
    model = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": model_name},
    }
    blocks = {
        "type": "object",
        "minProperties": 1,
        "properties": {
            "LIME": {"$ref": "#/components/schemas/Block"},
            "SHAP": {"$ref": "#/components/schemas/Block"},
        },
    }
    explanation = {  # one row: its blocks beside the timestamp; more: a list of them
        "type": "object",
        "required": ["timestamp"],
        "properties": {
            "timestamp": {"type": "string"},
            "LIME": {"$ref": "#/components/schemas/Block"},
            "SHAP": {"$ref": "#/components/schemas/Block"},
            "explanations": {"type": "array", "items": blocks},
        },
    }
    ready = {"type": "object", "properties": {"ready": {"type": "boolean"}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "explainer-sidecar",
            "version": __version__,
            "description": f"LIME and KernelSHAP explanations of the model '{model_name}'.",
        },
        "paths": {
            "/v1/models/{name}:explain": {
                "post": {
                    "summary": "Explain rows: per feature and output, a score and a 95% half-width",
                    "parameters": [model],
                    "requestBody": rows,
                    "responses": {
                        "200": _status(
                            "the explanation (RESPONSE_FORMAT=kserve shown)", explanation
                        ),
                        **_errors(400, 404, 413, 429, 502, 503, 504),
                    },
                }
            },
            "/v1/models/{name}:predict": {
                "post": {
                    "summary": "The predictor's scores for rows, through the explainer",
                    "parameters": [model],
                    "requestBody": rows,
                    "responses": {
                        "200": _status(
                            "KServe v1 predictions", {"type": "object", "required": ["predictions"]}
                        ),
                        **_errors(400, 404, 413, 502, 503, 504),
                    },
                }
            },
            "/v1/models/{name}": {
                "get": {
                    "summary": "Model status",
                    "parameters": [model],
                    "responses": {
                        "200": _status("ready", ready),
                        "503": _status("not ready", ready),
                        **_errors(404),
                    },
                }
            },
            "/v2/models/{name}/ready": {
                "get": {
                    "summary": "Model readiness (v2)",
                    "parameters": [model],
                    "responses": {
                        "200": _status("ready", ready),
                        "503": _status("not ready", ready),
                        **_errors(404),
                    },
                }
            },
            "/v2/health/live": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": _status("live", {"type": "object"})},
                }
            },
            "/v2/health/ready": {
                "get": {
                    "summary": "Readiness: warmed up, the predictor reachable and not stopping",
                    "responses": {
                        "200": _status("ready", ready),
                        "503": _status("not ready", ready),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _status("OpenAPI 3.1", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": {
                "RowsRequest": _rows_request(),
                "Error": ERROR,
                "Saliency": SALIENCY,
                "Block": BLOCK,
                "Explanation": explanation,
            }
        },
    }
