"""``parley check``: validate a project before anything starts, as ``rasa data validate`` does.

Every problem names its file and line. A project is wrong when:
- ``parley.yml`` is missing or invalid (``core.project.load_project``);
- a dialogue or NLU file is not valid YAML / CSV, or an NLU intent has no examples;
- a rule or story uses an intent that has no NLU examples, or one the domain does not list;
- a rule or story runs an action or response the domain does not define;
- a response has no text for one of the project's languages (a variant without a condition is
  the default language's; the others need ``condition: [{type: slot, name: language, ...}]``);
- an order in ``company/orders.yml`` has an id of another shape than ``orders:`` gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.project import (
    CORE_DIR,
    DOMAIN_KEYS,
    dialogue_files,
    dialogue_with_lines,
    merged_domain,
    variant_language,
)
from core.config import Settings
from core.project import Project, ProjectError, line_of, load_project, yaml_with_lines

RASA_ACTIONS = {
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
    "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent",
    "action_back", "action_extract_slots",
}
RASA_INTENTS = {"nlu_fallback", "restart", "session_start", "back"}


def check_project(settings: Settings) -> tuple[Project, list[ProjectError]]:
    """The project and every problem found in it (``parley.yml`` problems raise at once)."""
    from nlu.data import load_examples
    from nlu.errors import TrainingDataError
    from nlu.train import training_data

    project = load_project(settings.project)
    problems: list[ProjectError] = []
    try:
        examples = load_examples(training_data(settings))
    except TrainingDataError as exc:
        problems.append(_from_message(str(exc)))
        examples = []
    with_examples = {e.intent for e in examples}
    files: list[tuple[Path, dict[str, Any], yaml.Node | None]] = []
    for path in dialogue_files(project):
        try:
            files.append((path, *dialogue_with_lines(path)))
        except ProjectError as exc:
            problems.append(exc)
    if problems:
        return project, problems
    domain = merged_domain(project, [data for _, data, _ in files])
    core_rules = CORE_DIR / "data"
    for path in sorted(core_rules.glob("*.yml")):
        files.append((path, *dialogue_with_lines(path)))
    for path, data, node in files:
        problems += _check_steps(path, data, node, domain, with_examples)
        if path.is_relative_to(project.root):
            problems += _check_responses(path, data, node, project)
            unknown = sorted(k for k in data if k not in (*DOMAIN_KEYS, "rules", "stories",
                                                             "version", "nlu"))
            if unknown:
                problems.append(ProjectError(path, line_of(node, (unknown[0],)),
                                             f"unknown key {unknown[0]!r} (a dialogue file "
                                             "holds a Rasa domain, rules or stories)"))
    return project, problems + _check_order_ids(project)


def _check_order_ids(project: Project) -> list[ProjectError]:
    """The company's orders have ids of the shape ``orders:`` in parley.yml gives (else the
    order form would refuse every one of them); the first that does not is reported."""
    path = project.folder("company") / "orders.yml"
    if not path.is_file():
        return []
    try:
        data, node = yaml_with_lines(path)
    except ProjectError as exc:
        return [exc]
    ids = project.orders.ids
    for i, order in enumerate((data or {}).get("orders") or [] if isinstance(data, dict) else []):
        value = str((order or {}).get("id", "")) if isinstance(order, dict) else ""
        if not ids.valid(value):
            shape = (f"{ids.prefix.upper()}-" if ids.prefix else "") + "9" * ids.digits
            return [ProjectError(path, line_of(node, ("orders", i, "id")),
                                 f"order id {value!r} is not of the shape parley.yml's orders: "
                                 f"gives ({shape}); set orders.id_prefix and orders.id_digits")]
    return []


def _check_steps(path: Path, data: dict[str, Any], node: yaml.Node | None,
                 domain: dict[str, Any], with_examples: set[str]) -> list[ProjectError]:
    problems = []
    actions = ({*domain.get("actions", []), *domain.get("responses", {}),
                *domain.get("forms", {}), *RASA_ACTIONS})
    intents = {*domain.get("intents", []), *with_examples, *RASA_INTENTS}
    for kind in ("rules", "stories"):
        for i, item in enumerate(data.get(kind) or []):
            for j, step in enumerate((item or {}).get("steps") or []):
                if not isinstance(step, dict):
                    continue
                loc = (kind, i, "steps", j)
                intent = step.get("intent")
                if intent is not None and intent not in with_examples | RASA_INTENTS:
                    declared = "" if intent in intents else " and no domain lists it"
                    problems.append(ProjectError(path, line_of(node, (*loc, "intent")),
                                                 f"intent {intent!r} has no NLU examples"
                                                 f"{declared} (add some under nlu/)"))
                action = step.get("action")
                if action is not None and action not in actions:
                    problems.append(ProjectError(path, line_of(node, (*loc, "action")),
                                                 f"action {action!r} is not in the domain"))
    return problems


def _check_responses(path: Path, data: dict[str, Any], node: yaml.Node | None,
                     project: Project) -> list[ProjectError]:
    problems = []
    for name, variants in (data.get("responses") or {}).items():
        present = {variant_language(v or {}) or project.default for v in variants or []}
        missing = [lang for lang in project.languages if lang not in present]
        if missing:
            problems.append(ProjectError(
                path, line_of(node, ("responses", name)),
                f"response {name!r} has no text for {', '.join(missing)} (the project speaks "
                f"{', '.join(project.languages)}; add a variant with condition "
                f"[{{type: slot, name: language, value: {missing[0]}}}])"))
    return problems


def _from_message(message: str) -> ProjectError:
    """A ``file:line: problem`` message from the NLU loader as a ProjectError."""
    where, _, problem = message.partition(": ")
    file, _, line = where.rpartition(":")
    if file and line.isdigit():
        return ProjectError(file, int(line) or None, problem)
    return ProjectError(where, None, problem)
