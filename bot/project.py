"""Build the Rasa project Parley trains: the built-in core merged with a project's dialogue.

    bot/config.yml, bot/domain.yml, bot/data/*.yml   Parley's core (every project gets it)
    <project>/dialogue/*.yml                         the company's domain fragments, rules,
                                                     stories and forms
    <var_dir>/rasa/project/                          what ``rasa train`` reads (built here)

The core's responses are rendered for the project: ``%company%`` and ``%assistant%`` filled
from parley.yml, only the project's languages kept, the default language's text last and
without a condition (Rasa's fallback variant). The project's own domain overrides the core's
entries of the same name, as a later Rasa domain file would.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from core.config import ROOT, Settings
from core.project import Project, ProjectError, project_of, yaml_with_lines

CORE_DIR = ROOT / "bot"
DOMAIN_LISTS = ("intents", "entities", "actions")
DOMAIN_MAPS = ("slots", "responses", "forms")
DOMAIN_KEYS = (*DOMAIN_LISTS, *DOMAIN_MAPS, "session_config")
TRAINING_KEYS = ("rules", "stories")


def dialogue_files(project: Project) -> list[Path]:
    folder = project.folder("dialogue")
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in {".yml", ".yaml"})


def dialogue_with_lines(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    """A dialogue file's mapping (``{}`` when empty) and its node tree (for line numbers)."""
    data, node = yaml_with_lines(path)
    if data is not None and not isinstance(data, dict):
        raise ProjectError(path, 1, "expected a Rasa domain, rules or stories file (a mapping)")
    return data or {}, node


def read_dialogue(path: Path) -> dict[str, Any]:
    return dialogue_with_lines(path)[0]


# ---------------------------------------------------------------- the core, for a project

def variant_language(variant: dict[str, Any]) -> str | None:
    for condition in variant.get("condition") or []:
        if condition.get("name") == "language":
            return str(condition.get("value"))
    return None


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace(f"%{key}%", text)
        return re.sub(r" (?=[，。！？、：；）])", "", value)
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def localize(variants: list[dict[str, Any]], project: Project,
             default_source: str = "en") -> list[dict[str, Any]]:
    """Keep one variant per project language: conditioned ones for the other languages, the
    default language's last and unconditioned."""
    by_language: dict[str, dict[str, Any]] = {}
    for variant in variants:
        language = variant_language(variant) or default_source
        by_language.setdefault(language, {k: v for k, v in variant.items() if k != "condition"})
    out = []
    for language in project.languages:
        if language == project.default or language not in by_language:
            continue
        out.append({**by_language[language], "condition": [
            {"type": "slot", "name": "language", "value": language}]})
    fallback = by_language.get(project.default) or next(iter(by_language.values()))
    out.append(fallback)
    return out


def _zh(name: str) -> str:
    """A name inside Chinese text: Latin letters or digits at its ends get a space."""
    return (" " if name[:1].isascii() else "") + name + (" " if name[-1:].isascii() else "")


def assistant_names(project: Project, language: str) -> dict[str, str]:
    company = project.company.name
    if language == "zh":
        company = _zh(company)
        intro = (f"{project.assistant.name}，{company}的智能助手" if project.assistant.name
                 else f"{company}的智能助手")
    else:
        intro = (f"{project.assistant.name}, {company}'s virtual assistant"
                 if project.assistant.name else f"{company}'s virtual assistant")
    return {"company": company, "assistant": intro}


def core_domain(project: Project) -> dict[str, Any]:
    domain = yaml.safe_load((CORE_DIR / "domain.yml").read_text(encoding="utf-8"))
    responses = {}
    for name, variants in domain["responses"].items():
        filled = [_fill(v, assistant_names(project, variant_language(v) or "en"))
                  for v in variants]
        if name == "utter_greet" and project.widget.greeting is not None:
            filled = [{"text": project.text(project.widget.greeting, language) or "",
                       "condition": [{"type": "slot", "name": "language", "value": language}]}
                      for language in project.languages]
        responses[name] = localize(filled, project)
    domain["responses"] = responses
    domain["slots"]["language"]["values"] = list(project.languages)
    domain["slots"]["language"]["initial_value"] = project.default
    return dict(domain)


def merged_domain(project: Project,
                  fragments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The core domain with every project fragment merged in (the project wins on a clash);
    ``fragments``: the project's dialogue files already read (default: read them here)."""
    domain = core_domain(project)
    if fragments is None:
        fragments = [read_dialogue(path) for path in dialogue_files(project)]
    for fragment in fragments:
        for key in DOMAIN_LISTS:
            for item in fragment.get(key) or []:
                if item not in domain.setdefault(key, []):
                    domain[key].append(item)
        for key in DOMAIN_MAPS:
            if fragment.get(key):
                domain.setdefault(key, {}).update(fragment[key])
        if fragment.get("session_config"):
            domain["session_config"] = fragment["session_config"]
    return domain


# ---------------------------------------------------------------- the Rasa project folder

def build_dir(settings: Settings) -> Path:
    return settings.var_dir / "rasa" / "project"


def assemble(settings: Settings) -> Path:
    """Write the Rasa project for ``settings.project`` and return its folder."""
    from nlu.data import load_examples
    from nlu.train import training_data

    project = project_of(settings.project)
    out = build_dir(settings)
    staging = out.with_name("project.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "data").mkdir(parents=True)
    config = yaml.safe_load((CORE_DIR / "config.yml").read_text(encoding="utf-8"))
    config["language"] = project.default
    config["assistant_id"] = project.root.name
    _dump(staging / "config.yml", config)
    examples = load_examples(training_data(settings))
    dialogue = [(path, read_dialogue(path)) for path in dialogue_files(project)]
    domain = merged_domain(project, [fragment for _, fragment in dialogue])
    # An intent with examples that no dialogue file mentions is a question for the knowledge
    # base: a project with nothing but nlu/ and kb/ needs no rules.
    implicit = sorted({e.intent for e in examples} - set(domain["intents"]))
    domain["intents"] += implicit
    _dump(staging / "domain.yml", domain)
    if implicit:
        _dump(staging / "data" / "implicit-rules.yml", {"version": "3.1", "rules": [
            {"rule": f"{intent} is answered from knowledge",
             "steps": [{"intent": intent}, {"action": "action_answer_from_knowledge"}]}
            for intent in implicit]})
    for path in sorted((CORE_DIR / "data").glob("*.yml")):
        shutil.copyfile(path, staging / "data" / f"core-{path.name}")
    for i, (path, fragment) in enumerate(dialogue):
        training = {k: fragment[k] for k in TRAINING_KEYS if fragment.get(k)}
        if training:
            _dump(staging / "data" / f"project-{i:02d}-{path.stem}.yml",
                  {"version": "3.1", **training})
    # Rasa needs NLU data to build its NLU pipeline (Parley's NLU service does the parsing).
    nlu: dict[str, list[str]] = {}
    for example in examples:
        nlu.setdefault(example.intent, []).append(example.text)
    _dump(staging / "data" / "nlu.yml", {"version": "3.1", "nlu": [
        {"intent": intent, "examples": "".join(f"- {t}\n" for t in texts)}
        for intent, texts in nlu.items()]})
    shutil.rmtree(out, ignore_errors=True)
    staging.replace(out)
    return out


def fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000),
                    encoding="utf-8")
