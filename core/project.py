"""A Parley project: the folder that holds everything that belongs to one company.

    parley.yml   company, languages, assistant, widget, hand-off hours, order ids
    kb/          knowledge: Markdown, HTML, PDF and CSV FAQs
    nlu/         the company's intents and entities (Rasa YAML or CSV)
    dialogue/    Rasa domain fragments, rules, stories and forms (merged with bot/core)
    company/     graph entities: products, policies, orders
    .parley/     state (git-ignored): database, knowledge stores, models, secrets

``load_project`` validates ``parley.yml`` and reports the first problem as ``file:line``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import Unprocessable
from core.order_ids import OrderIds

PROJECT_FILE = "parley.yml"
STATE_DIR = ".parley"
LANGUAGES = ("en", "zh")  # the languages Parley's built-in core (bot/core) speaks
Language = Literal["en", "zh"]
Localized = str | dict[Language, str]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class ProjectError(Unprocessable):
    """A project that cannot run; ``message`` starts with ``file:line``."""

    code = "project_invalid"

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = str(path), line, problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Company(_Strict):
    name: str = Field(min_length=1, max_length=120)


class Assistant(_Strict):
    name: str = Field(default="", max_length=60)
    tone: Literal["friendly", "formal", "concise"] = "friendly"


class Widget(_Strict):
    title: Localized | None = None  # default: the company name
    color: str = Field(default="#2563eb", pattern=r"^#[0-9a-fA-F]{6}$")
    logo: str = ""  # a file in the project folder, or an https:// URL
    greeting: Localized | None = None  # default: the built-in greeting naming the company

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str) -> str:
        if value and not value.startswith("https://") and (
                Path(value).is_absolute() or ".." in Path(value).parts):
            raise ValueError("logo must be an https:// URL or a path inside the project folder")
        return value


class Handoff(_Strict):
    """When people answer. No ``hours``: always staffed."""

    timezone: str = "UTC"
    hours: dict[str, str] = Field(default_factory=dict)  # "mon-fri": "09:00-18:00", "sat": ...
    outside_hours: Localized | None = None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        for days, span in value.items():
            _days(days)
            if span != "closed" and not _HOURS.match(span):
                raise ValueError(f"{days}: {span!r} is not HH:MM-HH:MM or closed")
        return value


class Orders(_Strict):
    """The shape of the company's order ids (``core.order_ids``): ``PL-204817`` is prefix
    ``PL``, 6 digits; no prefix: the digits alone."""

    id_prefix: str = Field(default="", pattern=r"^[A-Za-z]{0,8}$")
    id_digits: int = Field(default=6, ge=4, le=16)

    @property
    def ids(self) -> OrderIds:
        return OrderIds(self.id_prefix, self.id_digits)


class Project(_Strict):
    company: Company
    languages: list[Language] = Field(default_factory=lambda: ["en"],  # type: ignore[arg-type]
                                      min_length=1)
    default_language: Language | None = None
    assistant: Assistant = Field(default_factory=Assistant)
    widget: Widget = Field(default_factory=Widget)
    handoff: Handoff = Field(default_factory=Handoff)
    orders: Orders = Field(default_factory=Orders)
    root: Path = Path()

    @property
    def default(self) -> str:
        return self.default_language or self.languages[0]

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def folder(self, name: str) -> Path:
        return self.root / name

    def text(self, value: Localized | None, language: str) -> str | None:
        """A localized value in ``language`` (a plain string serves every language)."""
        if value is None or isinstance(value, str):
            return value
        return value.get(language)  # type: ignore[call-overload,no-any-return]

    def title(self, language: str) -> str:
        return self.text(self.widget.title, language) or self.company.name

    def open_at(self, when: Any) -> bool:
        """Whether people answer at ``when`` (an aware datetime)."""
        from zoneinfo import ZoneInfo

        if not self.handoff.hours:
            return True
        local = when.astimezone(ZoneInfo(self.handoff.timezone))
        day, minute = _DAYS[local.weekday()], local.hour * 60 + local.minute
        for days, span in self.handoff.hours.items():
            if day not in _days(days) or span == "closed":
                continue
            m = _HOURS.match(span)
            assert m is not None
            start = int(m[1]) * 60 + int(m[2])
            end = int(m[3]) * 60 + int(m[4])
            if start <= minute < end:
                return True
        return False


def _days(spec: str) -> list[str]:
    """``mon-fri`` / ``sat`` / ``mon,wed`` to day names."""
    out: list[str] = []
    for part in spec.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(f"{spec!r}: days are mon..sun, e.g. mon-fri or sat")
        i, j = _DAYS.index(first), _DAYS.index(last or first)
        out.extend(_DAYS[i:j + 1] if i <= j else _DAYS[i:] + _DAYS[:j + 1])
    return out


# ---------------------------------------------------------------- loading with line numbers

def yaml_with_lines(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed YAML and its node tree (for line numbers); a syntax error as ProjectError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProjectError(path, None, "not UTF-8 text") from exc
    loader = yaml.SafeLoader(text)
    try:  # parsed once: the node tree, then the data built from it
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise ProjectError(path, mark.line + 1 if mark else None,
                           f"invalid YAML: {exc.problem or exc}") from exc
    finally:
        loader.dispose()
    return data, node


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` (as deep as the file goes)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(key)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def load_project(root: Path | str) -> Project:
    """Read and validate ``root/parley.yml``; ProjectError with ``file:line`` when wrong."""
    root = Path(root).resolve()
    path = root / PROJECT_FILE
    if not root.is_dir():
        raise ProjectError(root, None, "no such project folder (create one with `parley init`)")
    if not path.is_file():
        raise ProjectError(path, None, "missing: every project needs a parley.yml "
                                       "(create one with `parley init`)")
    data, node = yaml_with_lines(path)
    if not isinstance(data, dict):
        raise ProjectError(path, 1, "expected a mapping with at least `company: {name: ...}`")
    try:
        project = Project.model_validate({**data, "root": root})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p in {
            "str", "dict[literal['en','zh'],str]"}))
        field = ".".join(str(p) for p in loc) or "parley.yml"
        raise ProjectError(path, line_of(node, loc), f"{field}: {error['msg']}") from exc
    _check_languages(project, path, node)
    return project


def _check_languages(project: Project, path: Path, node: yaml.Node | None) -> None:
    if len(set(project.languages)) != len(project.languages):
        raise ProjectError(path, line_of(node, ("languages",)), "languages: listed twice")
    if project.default_language and project.default_language not in project.languages:
        raise ProjectError(path, line_of(node, ("default_language",)),
                           f"default_language: {project.default_language!r} is not one of "
                           f"languages {project.languages}")
    localized = {("widget", "title"): project.widget.title,
                 ("widget", "greeting"): project.widget.greeting,
                 ("handoff", "outside_hours"): project.handoff.outside_hours}
    for loc, value in localized.items():
        if isinstance(value, dict):
            for language in project.languages:
                if not value.get(language):  # type: ignore[call-overload]
                    raise ProjectError(path, line_of(node, loc),
                                       f"{'.'.join(loc)}: no text for language {language!r}")


@lru_cache(maxsize=8)
def _cached(root: Path, mtime: float) -> Project:
    return load_project(root)


def order_ids_of(root: Path) -> OrderIds:
    """The project's order id format; the default (digits alone) when it cannot be read: the
    processes that own the project (the API, ``parley check``) report why."""
    try:
        return project_of(root).orders.ids
    except ProjectError:
        return OrderIds()


def project_of(root: Path) -> Project:
    """The project at ``root``, re-read when its parley.yml changes."""
    root = Path(root).resolve()
    try:
        mtime = (root / PROJECT_FILE).stat().st_mtime
    except OSError:
        return load_project(root)  # raises the clear error
    return _cached(root, mtime)
