# Parley application image (API, NLU service, action server, Celery workers, Kafka consumer).
# Rasa runs from Dockerfile.rasa.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY staff staff
COPY conversations conversations
COPY migrations migrations
COPY bot bot
COPY nlu nlu
COPY knowledge knowledge
COPY handoff handoff
COPY web web
COPY workers workers
COPY analytics analytics
COPY data data
# The project this image serves (a company's folder: docs/projects.md); its state goes to
# /app/var, a volume, never into the image.
ARG PROJECT=examples/nimbus-home
COPY ${PROJECT} /app/project
ENV PARLEY_PROJECT=/app/project PARLEY_VAR_DIR=/app/var
# The CPU build of torch (training the NLU model); serving itself runs on ONNX Runtime.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -e '.[postgres,redis]'
RUN useradd --create-home parley && mkdir -p /app/var /app/models && chown -R parley /app/var /app/models
USER parley
EXPOSE 8000 5006 5055
CMD ["parley", "serve", "api"]
