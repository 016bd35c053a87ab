# The one image every Switchboard container runs; compose.yaml (or deploy/kubernetes) picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY switchboard ./switchboard
# A fixed numeric id: Kubernetes' runAsNonRoot can check it (deploy/kubernetes sets runAsUser 10001).
RUN pip install --no-cache-dir . && useradd --system --uid 10001 switchboard
USER 10001
EXPOSE 8080 50051 50052 50053 50054
CMD ["switchboard", "--help"]
