# One image for the coordinator and the example shop workers (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/examples \
    DIAGNOSE_EXAMPLES=/app/examples

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY examples ./examples
RUN pip install .

RUN useradd --create-home --uid 10001 app
USER app

CMD ["coordinator", "--help"]
