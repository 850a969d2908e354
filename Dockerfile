FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY models models
COPY infra infra
RUN pip install --no-cache-dir .
EXPOSE 6066
CMD ["reckon", "worker"]
