"""Where data files come from: a local path, ``s3://bucket/key`` on any S3-compatible
store, or ``http(s)://``, each possibly naming a directory (or key prefix) that holds one
data file — what KServe's storage initializer leaves in ``/mnt/models``.

Remote files are opened through fsspec (s3fs for S3, aiohttp for http) and read as a
stream. S3 is configured the way KServe configures its storage initializer from an S3
secret and its annotations:

* ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``);
  ``awsAnonymousCredential=true`` for public buckets;
* ``AWS_ENDPOINT_URL``, or ``S3_ENDPOINT`` (``host:port``) with ``S3_USE_HTTPS``
  (``0`` for plain http; default https), for S3-compatible stores such as MinIO;
* ``S3_VERIFY_SSL`` (``0`` to skip certificate checks) and ``AWS_CA_BUNDLE``;
* ``AWS_DEFAULT_REGION`` (or ``AWS_REGION``).

Failures become one line naming the cause, with every credential value scrubbed out.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import urlsplit

DATA_SUFFIXES = (".csv", ".npy", ".parquet", ".jsonl")
REMOTE_SCHEMES = ("s3", "http", "https")
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


# Their debug logs carry signed request headers and response bodies: kept at WARNING even
# when LOG_LEVEL is DEBUG.
QUIET_LOGGERS = ("botocore", "aiobotocore", "s3fs", "fsspec", "urllib3")


def quiet_client_logs() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class StorageError(ValueError):
    """A data file that cannot be found or read; the message is one safe line."""


def scheme(uri: str) -> str:
    """``s3``, ``http`` or ``https`` for a remote URI, ``""`` for a local path."""
    found = urlsplit(uri).scheme.lower()
    return found if found in REMOTE_SCHEMES else ""


def suffix(path: str) -> str:
    """The lower-case suffix of a URI, a local path, or a path within a filesystem."""
    return PurePosixPath(urlsplit(path).path if "://" in path else path).suffix.lower()


def s3_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """s3fs ``S3FileSystem`` arguments from KServe's S3 environment variables."""
    env = os.environ if environ is None else environ
    client: dict[str, Any] = {}
    options: dict[str, Any] = {"client_kwargs": client}
    if env.get("awsAnonymousCredential", "").lower() == "true":
        options["anon"] = True
    elif env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_SECRET_ACCESS_KEY"):
        options["key"] = env.get("AWS_ACCESS_KEY_ID", "")
        options["secret"] = env.get("AWS_SECRET_ACCESS_KEY", "")
        if env.get("AWS_SESSION_TOKEN"):
            options["token"] = env["AWS_SESSION_TOKEN"]
    endpoint = env.get("AWS_ENDPOINT_URL") or env.get("S3_ENDPOINT")
    if endpoint:
        if "://" not in endpoint:
            secure = env.get("S3_USE_HTTPS", "1") not in ("0", "false", "False")
            endpoint = f"{'https' if secure else 'http'}://{endpoint}"
        client["endpoint_url"] = endpoint
    region = env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION")
    if region:
        client["region_name"] = region
    if env.get("S3_VERIFY_SSL", "1") in ("0", "false", "False"):
        client["verify"] = False
    elif env.get("AWS_CA_BUNDLE"):
        client["verify"] = env["AWS_CA_BUNDLE"]
    options["config_kwargs"] = {
        "connect_timeout": CONNECT_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    return options


def filesystem(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for ``uri``."""
    import fsspec

    kind = scheme(uri)
    if kind == "s3":
        import s3fs

        return s3fs.S3FileSystem(**s3_options()), uri.split("://", 1)[1]
    if kind:
        import aiohttp

        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
        return fsspec.filesystem(kind, client_kwargs={"timeout": timeout}), uri
    return fsspec.filesystem("file"), os.path.abspath(uri)


def resolve(uri: str, suffixes: tuple[str, ...] = DATA_SUFFIXES) -> tuple[Any, str]:
    """(filesystem, path) of the data file ``uri`` names: itself, or the one file with a
    data suffix in the directory (or S3 prefix) it names."""
    fs, path = filesystem(uri)
    try:
        if scheme(uri) in ("http", "https") or fs.isfile(path):
            return fs, path
        if not fs.isdir(path):
            raise FileNotFoundError(path)
        found = sorted(
            p for p in fs.ls(path, detail=False) if suffix(p) in suffixes and fs.isfile(p)
        )
    except Exception as exc:  # fsspec backends raise many kinds; make them one line
        raise StorageError(describe(exc, uri)) from None
    if len(found) != 1:
        raise StorageError(
            f"{safe(uri)} is a directory holding {len(found)} data files "
            f"({', '.join(suffixes)}); it needs exactly one"
        )
    return fs, found[0]


@contextmanager
def open_binary(
    uri: str, suffixes: tuple[str, ...] = DATA_SUFFIXES
) -> Iterator[tuple[IO[bytes], str]]:
    """The data file ``uri`` names, open for streaming reads, and its suffix."""
    fs, path = resolve(uri, suffixes)
    try:
        handle = fs.open(path, "rb", block_size=8 << 20)
    except Exception as exc:
        raise StorageError(describe(exc, uri)) from None
    with handle:
        yield handle, suffix(path)


def download(uri: str, stem: Path, suffixes: tuple[str, ...] = DATA_SUFFIXES) -> Path:
    """Copy the data file ``uri`` names to ``stem`` + its suffix, in blocks (never whole
    in memory), unless a finished copy is there already; returns the copy."""
    with open_binary(uri, suffixes) as (source, found):
        target = stem.with_name(stem.name + found)
        if target.is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as sink:
                while block := source.read(8 << 20):
                    sink.write(block)
        except Exception as exc:
            raise StorageError(describe(exc, uri)) from None
        partial.replace(target)
    return target


def safe(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with credential values and URL user-info removed."""
    env = os.environ if environ is None else environ
    for name in SECRET_VARIABLES:
        value = env.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", text)


def describe(exc: BaseException, uri: str) -> str:
    """One safe line saying why ``uri`` could not be read."""
    name = type(exc).__name__
    text = " ".join(str(exc).split()) or name
    lowered = f"{name} {text}".lower()
    if isinstance(exc, PermissionError) or any(
        token in lowered
        for token in (
            "accessdenied",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "forbidden",
            "403",
        )
    ):
        cause = "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    elif (
        isinstance(exc, FileNotFoundError)
        or "nosuchbucket" in lowered
        or "nosuchkey" in lowered
        or "404" in lowered
    ):
        cause = "no such bucket, key or file"
    elif any(
        token in lowered
        for token in ("connect", "timeout", "timed out", "unreachable", "name or service")
    ):
        endpoint = (
            s3_options().get("client_kwargs", {}).get("endpoint_url")
            if scheme(uri) == "s3"
            else None
        )
        cause = f"cannot reach {'the endpoint ' + endpoint if endpoint else 'the server'} ({name})"
    else:
        cause = f"{name}: {text}"
    return safe(f"{uri}: {cause}")
