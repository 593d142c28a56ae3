"""``parley chat``: a customer's conversation from the terminal, over the public API.

It talks HTTP only (the running API at ``--url``, default the public URL), so it tries the
whole platform as the widget does. Exit code 1 when the API cannot be reached.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from core.cli import console
from core.config import get_settings

app = typer.Typer()


@app.command()
def chat(
    url: Annotated[str | None, typer.Option(help="API base URL.")] = None,
    locale: Annotated[str, typer.Option(help="en or zh")] = "en",
) -> None:
    """Chat with the running Parley from the terminal (Ctrl-D or /quit to leave)."""
    import httpx

    base = (url or get_settings().public_url).rstrip("/")
    with httpx.Client(base_url=base, timeout=60) as client:
        try:
            created = client.post("/api/v1/conversations", json={"locale": locale})
        except httpx.HTTPError as exc:
            console.print(f"[red]Parley is not reachable at {base}[/] ({type(exc).__name__}). "
                          "Start it with `make run`.")
            raise typer.Exit(1) from exc
        created.raise_for_status()
        conversation = created.json()
        headers = {"Authorization": f"Bearer {conversation['token']}"}
        console.print(f"[dim]conversation {conversation['id']}: type /quit to leave[/]")
        while True:
            try:
                text = console.input("[bold cyan]you> [/]")
            except (EOFError, KeyboardInterrupt):
                break
            if text.strip() in {"/quit", "/exit"}:
                break
            if not text.strip():
                continue
            response = client.post(f"/api/v1/conversations/{conversation['id']}/messages",
                                   headers=headers,
                                   json={"text": text, "client_message_id": uuid.uuid4().hex})
            body = response.json()
            if response.status_code != 200:
                console.print(f"[red]{body['error']['code']}[/]: {body['error']['message']}")
                continue
            for message in body["messages"]:
                if message["role"] == "customer":
                    continue
                console.print(f"[bold green]{message['role']}> [/]{message['text']}")
                for button in message.get("buttons") or []:
                    console.print(f"   [dim]\\[{button['title']}: {button['payload']}][/]")
            if body["state"] != "bot":
                console.print(f"[yellow]conversation state: {body['state']}[/]")
