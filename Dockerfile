# The connector image: `docker run klaviyo-complete/source-klaviyo-complete spec|check|discover|read ...`.
#
# BASE_IMAGE defaults to Airbyte's Python connector base (Python 3.11), pinned by tag and by the
# digest Airbyte's own Python connectors pin, so a public build is reproducible. Builds that
# cannot reach a registry pass a local stand-in: --build-arg BASE_IMAGE=localhost/python-base:3.11
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73
FROM ${BASE_IMAGE}

WORKDIR /airbyte/integration_code

# The dependencies exactly as locked (scripts/lock.sh): each version pinned and each file checked against its
# hash, wheels only, so a rebuild never picks up a newer airbyte-cdk whose internals the connector relies on
# (unit_tests/test_cdk_internals.py). Their own layer, rebuilt only when the lock changes. A non-root user to run.
COPY locks/runtime.txt ./locks/runtime.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary :all: -r locks/runtime.txt \
    && (getent passwd 1000 >/dev/null || useradd --create-home --uid 1000 airbyte)

# The connector itself, resolving nothing: its dependencies and its build backend (setuptools) are the lock's.
COPY pyproject.toml README.md ./
COPY source_klaviyo ./source_klaviyo
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation .

ENV PATH="/opt/venv/bin:${PATH}" \
    AIRBYTE_ENTRYPOINT="/opt/venv/bin/source-klaviyo"

LABEL io.airbyte.name="klaviyo-complete/source-klaviyo-complete" \
      io.airbyte.version="0.3.0"

# uid 1000: Airbyte's base image names it airbyte; the first RUN creates it where a base lacks it.
USER 1000
ENTRYPOINT ["/opt/venv/bin/source-klaviyo"]
