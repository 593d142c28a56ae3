"""What the chat widget and the public pages show for the project: its name, title, colour,
logo, greeting and languages, all from ``parley.yml``.

``GET /api/v1/widget/config`` is public (the widget reads it before anyone has a conversation)
and cacheable for a minute. A logo that is a file in the project folder is served by the web
app at ``LOGO_PATH``; ``logo_file`` is the only way to that file, so no request names a path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Response
from pydantic import BaseModel

from core.deps import SettingsDep
from core.project import STATE_DIR, Project, project_of

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/widget", tags=["widget"])
_warned: set[tuple[Path, str]] = set()  # a broken logo setting is logged once, not per request

LOGO_PATH = "/project/logo"
CACHE_CONTROL = "public, max-age=60"
# A logo is an image; anything else in the project folder is never served.
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml",
              ".ico": "image/x-icon"}
# The greeting when parley.yml has none.
GREETINGS = {"en": "Hi! I'm the virtual assistant of {company}. How can I help you today?",
             "zh": "您好！我是 {company} 的智能客服，请问有什么可以帮您？"}


class WidgetConfigPublic(BaseModel):
    company: str
    title: dict[str, str]
    color: str
    logo: str | None  # an https:// URL, or LOGO_PATH relative to the API's address
    greeting: dict[str, str]
    languages: list[str]
    default_language: str


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved (links followed) when it is a file inside ``root`` and outside the
    project's state folder, else None."""
    try:
        real, base = path.resolve(strict=True), root.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_file() or not real.is_relative_to(base) \
            or real.is_relative_to(base / STATE_DIR):
        return None
    return real


def logo_file(project: Project) -> tuple[Path, str] | None:
    """The project's logo file and its media type, when ``widget.logo`` names an image in the
    project folder that exists."""
    logo = project.widget.logo
    if not logo or logo.startswith("https://"):
        return None
    media_type = LOGO_TYPES.get(Path(logo).suffix.lower())
    path = _inside(project.root, project.root / logo)
    if media_type is None or path is None:
        if (project.root, logo) not in _warned:
            _warned.add((project.root, logo))
            logger.warning("widget.logo %r is not an image file in the project folder", logo)
        return None
    return path, media_type


def site_page(project: Project) -> Path | None:
    """The project's own front page, ``site/index.html``, when it has one."""
    return _inside(project.root, project.folder("site") / "index.html")


def widget_config(project: Project) -> WidgetConfigPublic:
    company = project.company.name
    logo = project.widget.logo
    return WidgetConfigPublic(
        company=company,
        title={language: project.title(language) for language in project.languages},
        color=project.widget.color.lower(),
        logo=logo if logo.startswith("https://") else LOGO_PATH if logo_file(project) else None,
        greeting={language: project.text(project.widget.greeting, language)
                  or GREETINGS[language].format(company=company)
                  for language in project.languages},
        languages=list(project.languages),
        default_language=project.default)


@router.get("/config", response_model=WidgetConfigPublic)
async def get_widget_config(settings: SettingsDep, response: Response) -> WidgetConfigPublic:
    """The widget's title, colour, logo, greeting and languages (public; cached for a minute)."""
    response.headers["Cache-Control"] = CACHE_CONTROL
    return widget_config(project_of(settings.project))
