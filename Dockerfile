# The one image every Switchboard container runs; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
RUN pip install --no-cache-dir '.[server]' && useradd --system switchboard
USER switchboard
EXPOSE 8080 50051 50052 50053 50054
CMD ["switchboard", "--help"]
