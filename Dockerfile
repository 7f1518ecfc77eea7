# The connector image: `docker run klaviyo-complete/source-klaviyo-complete spec|check|discover|read ...`.
#
# BASE_IMAGE defaults to Airbyte's Python connector base (Python 3.11), pinned by tag and by the
# digest Airbyte's own Python connectors pin, so a public build is reproducible. Builds that
# cannot reach a registry pass a local stand-in: --build-arg BASE_IMAGE=localhost/python-base:3.11
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73
FROM ${BASE_IMAGE}

WORKDIR /airbyte/integration_code

# Only what the package needs, so source edits elsewhere do not invalidate the install layer.
COPY pyproject.toml README.md ./
COPY source_klaviyo ./source_klaviyo

# The connector and its dependencies in their own virtual environment; a non-root user to run it.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 airbyte)

ENV PATH="/opt/venv/bin:${PATH}" \
    AIRBYTE_ENTRYPOINT="/opt/venv/bin/source-klaviyo"

LABEL io.airbyte.name="klaviyo-complete/source-klaviyo-complete" \
      io.airbyte.version="0.3.0"

# uid 1000: Airbyte's base image names it airbyte; the line above creates it where a base lacks it.
USER 1000
ENTRYPOINT ["/opt/venv/bin/source-klaviyo"]
