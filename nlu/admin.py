"""Model administration shared by the CLI and the admin API: activate (never below the
evaluation floor unless forced), roll back, run a canary, and tell the running NLU service to
swap at once (it would also notice within ``nlu_registry_poll_s``)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from core.config import Settings
from nlu.errors import EvaluationFloor, NLUInvalid
from nlu.registry import Registry

logger = logging.getLogger(__name__)


def _registry(settings: Settings) -> Registry:
    return Registry(settings.nlu_model_dir)


def check_floor(settings: Settings, version: str) -> None:
    metrics = _registry(settings).metadata(version).get("metrics") or {}
    accuracy = metrics.get("accuracy")
    if accuracy is None or accuracy < settings.nlu_floor:
        raise EvaluationFloor(
            f"Version {version} has accuracy {accuracy} below the floor {settings.nlu_floor}; "
            "activate it with force to override.", details={"accuracy": accuracy,
                                                            "floor": settings.nlu_floor})


def check_loads(settings: Settings, version: str) -> None:
    """Load the version and parse one text, so that a broken version is refused before it is
    activated (the running service would keep the old one and the registry would disagree)."""
    from nlu.service import NLUService

    try:
        service = NLUService(_registry(settings).root / version)
        service.warm_up()
        service.parse("hello")
    except Exception as exc:
        raise NLUInvalid(f"Version {version} cannot be served: {type(exc).__name__}",
                         code="nlu_version_broken") from exc


def reload_service(settings: Settings) -> dict[str, Any] | None:
    """Ask the NLU service to serve the registry's state now; None when it is not running."""
    try:
        response = httpx.post(f"{settings.nlu_url}/admin/reload", timeout=60)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError as exc:
        logger.info("NLU service not reloaded (%s); it picks the change up on its own",
                    type(exc).__name__)
        return None


def live_stats(settings: Settings) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{settings.nlu_url}/admin/stats", timeout=5)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError:
        return None


def activate(settings: Settings, version: str, *, force: bool = False) -> dict[str, Any] | None:
    registry = _registry(settings)
    registry.metadata(version)
    if not force:
        check_floor(settings, version)
    check_loads(settings, version)
    registry.activate(version, reason="forced" if force else "activate")
    return reload_service(settings)


def rollback(settings: Settings) -> str:
    version = _registry(settings).rollback()
    reload_service(settings)
    return version


def set_canary(settings: Settings, version: str, share: float) -> dict[str, Any] | None:
    check_floor(settings, version)
    check_loads(settings, version)
    _registry(settings).set_canary(version, share)
    return reload_service(settings)


def clear_canary(settings: Settings) -> dict[str, Any] | None:
    _registry(settings).clear_canary()
    return reload_service(settings)


def overview(settings: Settings) -> dict[str, Any]:
    """Every version's metadata and metrics, with the live figures of the active version and
    the canary side by side."""
    registry = _registry(settings)
    versions = []
    for version in registry.versions():
        meta = registry.metadata(version)
        versions.append({k: meta.get(k) for k in (
            "version", "created_at", "kind", "base_model", "data_hash", "examples", "metrics",
            "metrics_on", "serving", "threshold")})
    return {"active": registry.active_version(), "canary": registry.canary(),
            "floor": settings.nlu_floor, "history": registry.history()[-20:],
            "versions": versions, "live": live_stats(settings)}
