"""``parley agents``: staff accounts from the command line.

The password never appears in the arguments: it is prompted for (hidden, twice) or read from
``PARLEY_NEW_PASSWORD``. An invalid or duplicate account is one error line and exit code 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.cli import console, fail
from core.config import get_settings

app = typer.Typer(help="Staff accounts (agents, admins and analysts).")


@app.command("create")
def agents_create(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="agent, admin or analyst")] = "agent",
    skills: Annotated[str, typer.Option(help="comma-separated")] = "",
    languages: Annotated[str, typer.Option(help="comma-separated")] = "en",
    max_concurrent: Annotated[int, typer.Option()] = 3,
) -> None:
    """Create a staff account; the password is read from the prompt (or PARLEY_NEW_PASSWORD)."""
    import os

    from pydantic import ValidationError

    from core.errors import ParleyError
    from staff.bootstrap import create_agent
    from staff.schemas import AgentCreate

    password = os.environ.get("PARLEY_NEW_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    try:
        agent = create_agent(get_settings(), AgentCreate(
            email=email, name=name, password=password, role=role,  # type: ignore[arg-type]
            skills=[s for s in skills.split(",") if s],
            languages=[s for s in languages.split(",") if s], max_concurrent=max_concurrent))
    except (ValidationError, ParleyError) as exc:
        fail(str(exc))
    console.print(f"created {agent.role} {agent.email} (id {agent.id})")
