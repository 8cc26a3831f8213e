# statement-bot: a small image that runs as a non-root user, with the database on a volume.
#   docker build -t statement-bot .
#   docker run --rm -e TELEGRAM_BOT_TOKEN=... -v statement-bot-state:/app/state statement-bot

# Build stage: the pinned dependencies and the package, into a venv copied as a whole.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN /opt/venv/bin/pip install --no-deps . && rm -rf /opt/venv/lib/python3.11/site-packages/pip*

# Run stage: no compilers, no pip cache, no source tree.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin bot
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY config ./config
RUN mkdir -p /app/state && chown bot:bot /app/state
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATEMENT_BOT_CONFIG=/app/config/bot.toml
USER bot
VOLUME ["/app/state"]
# healthy = the database opens and every feed was read within a few of its intervals
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
    CMD ["statement-bot", "health"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["statement-bot"]
CMD ["run"]
