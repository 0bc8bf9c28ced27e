# The image that compose.yaml runs, for the processors and the example web service alike:
# luasched with its "web" extra (starlette, uvicorn), and the example service in /app.
# How to use it: docs/deployment/compose.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from: a change to the tests or the docs does not reinstall.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY luasched/ luasched/
COPY lua/ lua/
RUN pip install --no-cache-dir '/src[web]'

# The APP module (examples.service) is imported from the working directory.
WORKDIR /app
COPY examples/ examples/

RUN useradd --create-home --uid 10001 luasched
USER luasched

EXPOSE 8000
CMD ["luasched", "--help"]
