# The explainer container of a KServe InferenceService. KServe appends
# --model_name, --predictor_host, --http_port (and --workers) to the entrypoint.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY explainer ./explainer
COPY explainers ./explainers
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/var/cache/numba
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install --no-cache-dir -c /tmp/constraints.txt /wheels/*.whl \
 && rm -rf /wheels /tmp/constraints.txt
# Compile every numba kernel now, into a cache the runtime user owns: no request, and
# no start-up, pays for JIT compilation (a different CPU recompiles into the same place).
RUN mkdir -p /var/cache/numba \
 && explainer warm-up \
 && chown -R 10001:10001 /var/cache/numba
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD ["explainer", "healthcheck"]
ENTRYPOINT ["explainer", "serve"]
