"""One validated settings object, from the environment and command-line flags.

Each field documents itself and names its environment variable(s); the CLI builds one
``--<field>`` flag per field (plus KServe's long names for the predictor timeout and
retries). Flags win over the environment.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ExplainerType = Literal["LIME", "SHAP", "ALL"]
EXPLAINER_TYPES: tuple[ExplainerType, ...] = ("LIME", "SHAP", "ALL")


def _env(*names: str) -> Any:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=True,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # an empty variable in a manifest means "not set"
    )

    explainer_type: ExplainerType = Field(
        "ALL",
        validation_alias=_env("explainer_type", "EXPLAINER_TYPE"),
        description="Which explanations to compute: LIME, SHAP or ALL (case-insensitive).",
    )
    model_name: str | None = Field(
        None,
        validation_alias=_env("model_name", "MODEL_NAME"),
        description="The model's name, in the routes and at the predictor.",
    )
    predictor_host: str | None = Field(
        None,
        validation_alias=_env("predictor_host", "PREDICTOR_HOST"),
        description="Predictor host[:port] (no port means 80) or a full http(s) URL.",
    )
    predictor_protocol: Literal["v2", "grpc-v2", "v1", "openai"] = Field(
        "v2",
        validation_alias=_env("predictor_protocol", "PREDICTOR_PROTOCOL"),
        description="How to talk to the predictor: v2 (Open Inference Protocol over REST), "
        "grpc-v2 (its gRPC service, as ModelMesh speaks), v1 (KServe's instances/predictions) "
        "or openai (an OpenAI-compatible server of a generative model: a host serves the API "
        "at /openai/v1, as KServe's huggingface runtime; a URL with a path is used as it is).",
    )
    openai_empty_context: str = Field(
        "<|endoftext|>",
        min_length=1,
        validation_alias=_env("openai_empty_context", "OPENAI_EMPTY_CONTEXT"),
        description="openai: the text scored before the response when masking leaves the "
        "prompt empty (always for the baseline): the tokenizer's BOS or end-of-text token.",
    )
    openai_max_prompts: int = Field(
        1024,
        ge=1,
        validation_alias=_env("openai_max_prompts", "OPENAI_MAX_PROMPTS"),
        description="openai: most prompts in one completions call (vLLM's default limit).",
    )
    max_response_tokens: int = Field(
        512,
        ge=1,
        validation_alias=_env("max_response_tokens", "MAX_RESPONSE_TOKENS"),
        description="openai: most tokens a request may ask the explainer to generate "
        "(max_tokens; 413 above).",
    )
    predictor_use_ssl: bool = Field(
        False,
        validation_alias=_env("predictor_use_ssl", "PREDICTOR_USE_SSL"),
        description="Use https for a predictor given as host[:port].",
    )
    predictor_ca_bundle: str | None = Field(
        None,
        validation_alias=_env("predictor_ca_bundle", "PREDICTOR_CA_BUNDLE"),
        description="PEM file of CA certificates to trust for an https or TLS gRPC predictor.",
    )
    predictor_grpc_max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        validation_alias=_env(
            "predictor_grpc_max_message_bytes", "PREDICTOR_GRPC_MAX_MESSAGE_BYTES"
        ),
        description="The gRPC predictor's message limit; calls are split to fit it.",
    )
    host: str = Field(
        "0.0.0.0",
        validation_alias=_env("host", "HOST"),
        description="Address the explainer listens on.",
    )
    http_port: int = Field(
        8080,
        ge=0,
        le=65535,
        validation_alias=_env("http_port", "HTTP_PORT", "PORT"),
        description="Port the explainer listens on.",
    )
    workers: int = Field(
        1,
        ge=1,
        validation_alias=_env("workers", "WORKERS"),
        description="Accepted from KServe; the explainer serves from one event loop.",
    )
    lime_samples: int | None = Field(
        None,
        ge=10,
        validation_alias=_env("lime_samples", "LIME_SAMPLES"),
        description=(
            "Perturbed rows per LIME explanation; by default 1000, and more, up to 5000, "
            "until the top 5 features are settled (5000 at once beside SHAP's larger plan)."
        ),
    )
    lime_max_samples: int = Field(
        50_000,
        ge=10,
        validation_alias=_env("lime_max_samples", "LIME_MAX_SAMPLES"),
        description="Largest lime_samples a request may ask for (413 above).",
    )
    shap_samples: int | None = Field(
        None,
        ge=4,
        validation_alias=_env("shap_samples", "SHAP_SAMPLES"),
        description=(
            "Coalitions per background row of a SHAP explanation (whole pairs of orders, "
            "2·(M − 1) coalitions each); by default 12,000 rows spread over the background "
            "rows, at least one pair each (20,000 coalitions for a text or a prompt)."
        ),
    )
    shap_max_samples: int = Field(
        20_000,
        ge=4,
        validation_alias=_env("shap_max_samples", "SHAP_MAX_SAMPLES"),
        description="Largest shap_samples a request may ask for (413 above).",
    )
    background_data: str | None = Field(
        None,
        validation_alias=_env("background_data", "BACKGROUND_DATA"),
        description=(
            "Background rows: a CSV (header row gives feature names; text and true/false "
            "columns are categorical), Parquet or .npy file, as a local path, "
            "s3://bucket/key (KServe's S3 variables), https://… or a directory (or S3 "
            "prefix) holding one."
        ),
    )
    background_max_rows: int = Field(
        100_000,
        ge=1,
        validation_alias=_env("background_max_rows", "BACKGROUND_MAX_ROWS"),
        description="BACKGROUND_DATA past this many rows is streamed into a seeded sample.",
    )
    background_reservoir_size: int = Field(
        1000,
        ge=1,
        validation_alias=_env("background_reservoir_size", "BACKGROUND_RESERVOIR_SIZE"),
        description="Without BACKGROUND_DATA: how many past input rows to keep as background.",
    )
    feature_names: Annotated[list[str] | None, NoDecode] = Field(
        None,
        validation_alias=_env("feature_names", "FEATURE_NAMES"),
        description="Comma-separated feature names.",
    )
    categorical_features: Annotated[list[str] | None, NoDecode] = Field(
        None,
        validation_alias=_env("categorical_features", "CATEGORICAL_FEATURES"),
        description=(
            "Comma-separated features that are categorical though they hold numbers (text "
            "and booleans in the background, BYTES and BOOL in the metadata are anyway)."
        ),
    )
    integer_features: Annotated[list[str] | None, NoDecode] = Field(
        None,
        validation_alias=_env("integer_features", "INTEGER_FEATURES"),
        description=(
            "Comma-separated features that take whole numbers only (INT tensors in the "
            "predictor's metadata are anyway)."
        ),
    )
    output_names: Annotated[list[str] | None, NoDecode] = Field(
        None,
        validation_alias=_env("output_names", "OUTPUT_NAMES"),
        description="Comma-separated names for the predictor's output columns.",
    )
    seed: int = Field(
        0,
        ge=0,
        validation_alias=_env("seed", "EXPLAINER_SEED"),
        description="Default random seed; a request may override it.",
    )
    shap_background_size: int | None = Field(
        None,
        ge=2,
        validation_alias=_env("shap_background_size", "SHAP_BACKGROUND_SIZE"),
        description=(
            "Most background rows one SHAP explanation uses: a larger background is "
            "stratified and each explanation draws this many rows from it. Default: as "
            "many as 12,000 predictor rows score at one pair of orders each, less 16 "
            "that get a second pair to calibrate the intervals: 12000 / (2(M − 1)) − 16 "
            "for M features, at most 1000."
        ),
    )
    predictor_output: str | None = Field(
        None,
        validation_alias=_env("predictor_output", "PREDICTOR_OUTPUT"),
        description="Predictor output to explain; default predict_proba where offered.",
    )
    predictor_datatype: Literal["FP64", "FP32"] = Field(
        "FP64",
        validation_alias=_env("predictor_datatype", "PREDICTOR_DATATYPE"),
        description="Datatype of the rows sent to the predictor.",
    )
    predictor_max_batch: int = Field(
        32_768,
        ge=1,
        validation_alias=_env("predictor_max_batch", "PREDICTOR_MAX_BATCH"),
        description="Most rows in one predictor call; larger batches are split.",
    )
    predictor_max_concurrency: int = Field(
        4,
        ge=1,
        validation_alias=_env("predictor_max_concurrency", "PREDICTOR_MAX_CONCURRENCY"),
        description="Most predictor calls in flight at once.",
    )
    predictor_binary: bool | None = Field(
        None,
        validation_alias=_env("predictor_binary", "PREDICTOR_BINARY"),
        description="v2 REST: send and receive raw tensor bytes (the binary tensor data "
        "extension). Unset: where the server's GET /v2 lists binary_tensor_data (Triton); "
        "KServe's model server supports it without listing it.",
    )
    predictor_coalesce: bool = Field(
        True,
        validation_alias=_env("predictor_coalesce", "PREDICTOR_COALESCE"),
        description="Let concurrent requests' rows share predictor calls.",
    )
    predictor_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=1000,
        validation_alias=_env("predictor_batch_wait_ms", "PREDICTOR_BATCH_WAIT_MS"),
        description="Milliseconds a partly filled predictor call may wait for other "
        "requests' rows while calls are in flight (never when the predictor is idle).",
    )
    predictor_timeout: float = Field(
        60.0,
        gt=0,
        validation_alias=_env(
            "predictor_timeout", "predictor_request_timeout_seconds", "PREDICTOR_TIMEOUT"
        ),
        description="Seconds one predictor call may take.",
    )
    predictor_retries: int = Field(
        2,
        ge=0,
        validation_alias=_env(
            "predictor_retries", "predictor_request_retries", "PREDICTOR_RETRIES"
        ),
        description="Retries of a predictor call that could not connect.",
    )
    response_format: Literal["kserve", "trustyai"] = Field(
        "kserve",
        validation_alias=_env("response_format", "RESPONSE_FORMAT"),
        description="kserve (the documented shape) or trustyai (the TrustyAI image's shape).",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        validation_alias=_env("max_body_bytes", "MAX_BODY_BYTES"),
        description="Largest request body accepted (413 above).",
    )
    max_rows: int = Field(
        100,
        ge=1,
        validation_alias=_env("max_rows", "MAX_ROWS"),
        description="Most rows one :explain request may ask to explain (413 above).",
    )
    max_features: int = Field(
        1000,
        ge=1,
        validation_alias=_env("max_features", "MAX_FEATURES"),
        description="Most features a row may have (413 above).",
    )
    max_text_chars: int = Field(
        20_000,
        ge=1,
        validation_alias=_env("max_text_chars", "MAX_TEXT_CHARS"),
        description="Longest text a request may ask to explain, in characters (413 above).",
    )
    max_in_flight: int = Field(
        8,
        ge=1,
        validation_alias=_env("max_in_flight", "MAX_IN_FLIGHT"),
        description="Explanations in progress at once; more get 429 with Retry-After. Each "
        "SHAP explanation of the default budget (M = 20) holds ~26 MB: 8 fit a 1Gi container.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        validation_alias=_env("log_level", "LOG_LEVEL"),
        description="Logging level. Feature values are logged only at DEBUG.",
    )

    @field_validator("explainer_type", "log_level", "predictor_datatype", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("response_format", "predictor_protocol", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "feature_names", "output_names", "categorical_features", "integer_features", mode="before"
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = [name.strip() for name in value.split(",")]
            return [name for name in names if name] or None
        return value

    @field_validator("predictor_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        parts = urlsplit(value if "://" in value else f"http://{value}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected host[:port] or http(s)://host[:port], got {value!r}")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in {value!r}") from exc
        return value

    def predictor_url(self) -> str:
        """Base URL of the predictor; a bare host means port 80 (443 with SSL)."""
        if not self.predictor_host:
            raise ValueError("predictor_host is not set")
        if "://" in self.predictor_host:
            return self.predictor_host.rstrip("/")
        scheme = "https" if self.predictor_use_ssl else "http"
        parts = urlsplit(f"{scheme}://{self.predictor_host}")
        port = parts.port or (443 if self.predictor_use_ssl else 80)
        return f"{scheme}://{parts.hostname}:{port}"

    def openai_url(self) -> str:
        """The OpenAI API's base URL: a URL with a path as it is, else the host's
        /openai/v1 (KServe's huggingface runtime)."""
        url = self.predictor_url()
        return url if urlsplit(url).path not in ("", "/") else f"{url}/openai/v1"

    def predictor_tls(self) -> bool:
        return self.predictor_url().startswith("https://")

    def predictor_address(self) -> str:
        """host:port of the predictor, as gRPC takes it."""
        parts = urlsplit(self.predictor_url())
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


# Field → the environment variable a user most likely set, for error messages.
def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        names = [c for c in alias.choices if isinstance(c, str) and c.isupper()]
        if names:
            return names[0]
    return field.upper()


def describe_error(error: ValidationError) -> str:
    """One line naming the setting (env and flag) and what is wrong with it."""
    first = error.errors()[0]
    loc = str(first["loc"][0]) if first["loc"] else "settings"
    field = next(
        (
            name
            for name, info in Settings.model_fields.items()
            if name == loc
            or (
                isinstance(info.validation_alias, AliasChoices)
                and loc in info.validation_alias.choices
            )
        ),
        loc,
    )
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"invalid setting {env_name(field)} / --{field}: {first['msg']}{shown}"
