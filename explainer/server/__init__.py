"""The HTTP server: the aiohttp app and its routes (``app``), its lifetime under
Kubernetes (``lifecycle``), its metrics and its OpenAPI document."""
