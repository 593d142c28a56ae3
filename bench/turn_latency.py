"""Turn latency of the real stack (NLU service + action server + Rasa 3.6 + API), greeting
turns and knowledge turns reported separately.

Starts its own stack (``tests.stack.running_stack``: models trained from the demo data, the
extractive generator), then times ``POST /api/v1/conversations/{id}/messages`` until the reply
is stored and returned. Half the turns are greetings ("hello", "你好", …), half knowledge
questions from the demo's ``eval/kb_qa.yml`` (English and Chinese); a conversation is replaced
after ``--per-conversation`` turns or when it leaves the bot (a hand-off).

Modes (``--modes``, default ``sequential closed``):
- ``sequential``: one turn at a time;
- ``closed``: ``--concurrency`` conversations (20), each sending its next turn as soon as the
  last one returned;
- ``open``: Poisson arrivals at ``--rate`` turns/s for ``--duration`` s, each turn sent in an
  idle conversation; latency counts from the scheduled arrival (no coordinated omission);
- ``find-rate``: open loop at ``--start-rate``, ×``--rate-step`` per step, until the knowledge
  p95 exceeds ``--p95-limit`` ms (1000); reports the highest rate that met it.

    .venv/bin/python bench/turn_latency.py [--turns 200] [--concurrency 20] [--rate 2]
        [--find-rate] [--duration 60] [--state DIR] [--report r.json]

``--turns 60 --duration 20`` runs in about two minutes once the stack's models exist (reuse
them with ``--state``; a first start trains the NLU and Rasa models and embeds the knowledge
base). The machine's load (``os.getloadavg``) is printed and reported with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core.config import DEMO_PROJECT
from tests.stack import Stack, running_stack

GREETINGS = ["hello", "你好", "hi there", "hey", "good morning", "您好", "hi", "嗨",
             "hey there", "早上好"]
KINDS = ("greeting", "knowledge")
BOT_STATES = {"bot", "resolved"}


def knowledge_questions() -> list[tuple[str, str]]:
    """(question, language) from the demo's retrieval evaluation set."""
    qa = yaml.safe_load((DEMO_PROJECT / "eval" / "kb_qa.yml").read_text("utf-8"))
    return [(q["q"], q.get("lang", "en")) for q in qa["questions"]]


class Workload:
    """Alternating greeting / knowledge turns (or a seeded coin flip), cycling each list."""

    def __init__(self, seed: int = 2026) -> None:
        self.rng = random.Random(seed)
        questions = knowledge_questions()
        self.rng.shuffle(questions)
        self._greetings = itertools.cycle([(g, "zh" if not g.isascii() else "en")
                                           for g in GREETINGS])
        self._questions = itertools.cycle(questions)
        self._alternate = itertools.cycle(KINDS)

    def next(self, kind: str | None = None, *, random_kind: bool = False) -> tuple[str, str, str]:
        """(kind, text, language)."""
        if kind is None:
            kind = self.rng.choice(KINDS) if random_kind else next(self._alternate)
        text, lang = next(self._greetings if kind == "greeting" else self._questions)
        return kind, text, lang


@dataclass
class Sample:
    kind: str
    seconds: float
    message_id: str = ""
    conversation_id: str = ""
    ok: bool = True
    error: str = ""  # the status and error code of a failed turn


@dataclass
class Conversation:
    id: str
    headers: dict[str, str]
    turns: int = 0
    open: bool = True


class Client:
    """The public API as a customer's widget uses it."""

    def __init__(self, base_url: str, *, per_conversation: int) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=120,
                                      limits=httpx.Limits(max_connections=400,
                                                          max_keepalive_connections=400))
        self.per_conversation = per_conversation

    async def new_conversation(self, locale: str = "en") -> Conversation:
        response = await self.http.post("/api/v1/conversations", json={"locale": locale})
        response.raise_for_status()
        created = response.json()
        return Conversation(created["id"], {"Authorization": f"Bearer {created['token']}"})

    async def turn(self, conversation: Conversation, kind: str, text: str,
                   scheduled: float | None = None) -> Sample:
        """One turn; timed from ``scheduled`` (open loop) or from the send."""
        started = time.perf_counter() if scheduled is None else scheduled
        response = await self.http.post(
            f"/api/v1/conversations/{conversation.id}/messages", headers=conversation.headers,
            json={"text": text, "client_message_id": uuid.uuid4().hex})
        elapsed = time.perf_counter() - started
        conversation.turns += 1
        if response.status_code != 200:
            conversation.open = False
            try:
                code = response.json().get("error", {}).get("code", "")
            except (ValueError, AttributeError):
                code = ""
            return Sample(kind, elapsed, conversation_id=conversation.id, ok=False,
                          error=f"{response.status_code} {code}".strip())
        body = response.json()
        if body["state"] not in BOT_STATES or conversation.turns >= self.per_conversation:
            conversation.open = False  # handed off (the bot no longer answers) or long enough
        return Sample(kind, elapsed, body["messages"][0]["id"], conversation.id)

    async def fresh(self, conversation: Conversation | None) -> Conversation:
        if conversation is not None and conversation.open:
            return conversation
        return await self.new_conversation()

    async def aclose(self) -> None:
        await self.http.aclose()


# ---------------------------------------------------------------- modes

@dataclass
class Run:
    label: str
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    rate: float | None = None
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per turn, by process kind

    def ms(self, kind: str | None = None) -> list[float]:
        return [s.seconds * 1000 for s in self.samples if s.ok and kind in (None, s.kind)]

    @property
    def errors(self) -> int:
        return sum(not s.ok for s in self.samples)

    def error_kinds(self) -> dict[str, int]:
        return dict(Counter(s.error for s in self.samples if not s.ok))


async def sequential(client: Client, workload: Workload, turns: int) -> Run:
    run, conversation = Run("sequential"), None
    started = time.perf_counter()
    for _ in range(turns):
        conversation = await client.fresh(conversation)
        kind, text, _lang = workload.next()
        run.samples.append(await client.turn(conversation, kind, text))
    run.wall = time.perf_counter() - started
    return run


async def closed_loop(client: Client, workload: Workload, turns: int, concurrency: int) -> Run:
    run = Run(f"closed loop, {concurrency} conversations")
    remaining = iter(range(turns))

    async def customer() -> None:
        conversation = None
        for _ in remaining:  # shared: the customers together send ``turns`` turns
            conversation = await client.fresh(conversation)
            kind, text, _lang = workload.next()
            run.samples.append(await client.turn(conversation, kind, text))

    started = time.perf_counter()
    await asyncio.gather(*(customer() for _ in range(concurrency)))
    run.wall = time.perf_counter() - started
    return run


async def open_loop(client: Client, workload: Workload, rate: float, duration: float) -> Run:
    """Poisson arrivals; each turn takes an idle conversation (new ones are made ahead)."""
    run = Run(f"open loop, {rate:g} turns/s", rate=rate)
    idle: list[Conversation] = [await client.new_conversation()
                                for _ in range(max(4, int(rate * 2)))]
    tasks: list[asyncio.Task[None]] = []

    async def one(scheduled: float, kind: str, text: str) -> None:
        conversation = idle.pop() if idle else await client.new_conversation()
        run.samples.append(await client.turn(conversation, kind, text, scheduled))
        if conversation.open:
            idle.append(conversation)

    started = time.perf_counter()
    arrival = started
    while True:
        arrival += workload.rng.expovariate(rate)
        if arrival - started > duration:
            break
        await asyncio.sleep(max(0.0, arrival - time.perf_counter()))
        kind, text, _lang = workload.next(random_kind=True)
        tasks.append(asyncio.create_task(one(arrival, kind, text)))
    await asyncio.gather(*tasks)
    run.wall = time.perf_counter() - started
    return run


async def find_rate(client: Client, workload: Workload, *, start: float, step: float,
                    duration: float, limit_ms: float, max_steps: int) -> tuple[list[Run], float]:
    """Open-loop steps of rising rate until the knowledge p95 exceeds ``limit_ms``."""
    runs: list[Run] = []
    best, rate = 0.0, start
    for _ in range(max_steps):
        run = await metered(open_loop(client, workload, rate, duration))
        runs.append(run)
        p95 = percentile(run.ms("knowledge"), 0.95)
        print_run(run)
        if p95 > limit_ms or run.errors:
            break
        best, rate = rate, round(rate * step, 2)
        await asyncio.sleep(2)  # let the queues drain between steps
    return runs, best


# ---------------------------------------------------------------- CPU per turn

class CpuMeter:
    """CPU seconds (user + system) used by each service's process group and by this client,
    read from ``/proc``: a run's change divided by its turns is each kind of process's cost
    per turn, which does not depend on what else the machine is doing the way latency does."""

    def __init__(self, stack: Stack | None) -> None:
        self.groups = ({s.name: s.process.pid for s in stack.supervisor.services
                        if s.process is not None} if stack is not None else {})

    @staticmethod
    def _group_seconds(pgid: int) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def read(self) -> dict[str, float]:
        own = os.times()
        return {**{name: self._group_seconds(pgid) for name, pgid in self.groups.items()},
                "client": own.user + own.system}

    @staticmethod
    def per_turn(before: dict[str, float], after: dict[str, float], turns: int
                 ) -> dict[str, float]:
        if not turns:
            return {}
        used = {name: (after[name] - before.get(name, 0.0)) * 1000 / turns for name in after}
        return {**{k: round(v, 1) for k, v in used.items()},
                "total": round(sum(v for k, v in used.items() if k != "client"), 1)}


METER = CpuMeter(None)


async def metered(run_coro: Any) -> Run:
    before = METER.read()
    run: Run = await run_coro
    run.cpu_ms = CpuMeter.per_turn(before, METER.read(), len(run.samples))
    return run


# ---------------------------------------------------------------- figures

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float | int]:
    return {"n": len(values), "p50_ms": round(percentile(values, .5), 1),
            "p95_ms": round(percentile(values, .95), 1),
            "p99_ms": round(percentile(values, .99), 1),
            "mean_ms": round(statistics.mean(values), 1) if values else float("nan")}


def print_run(run: Run) -> None:
    for kind in (*KINDS, None):
        ms = run.ms(kind)
        label = f"{run.label}: {kind or 'all'}"
        line = (f"{label:<46} n={len(ms):<4} p50={percentile(ms, .5):7.1f} ms  "
                f"p95={percentile(ms, .95):7.1f} ms  p99={percentile(ms, .99):7.1f} ms")
        if kind is None:
            line += f"  throughput={len(ms) / run.wall:5.2f} turns/s  errors={run.errors}"
            if run.errors:
                line += f" {run.error_kinds()}"
        print(line, flush=True)
    if run.cpu_ms:
        print(f"{run.label}: CPU ms per turn " + "  ".join(f"{k}={v:.1f}"
                                                           for k, v in run.cpu_ms.items()),
              flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def run_report(run: Run) -> dict[str, Any]:
    return {"label": run.label, "rate": run.rate, "wall_s": round(run.wall, 1),
            "throughput": round(len(run.ms()) / run.wall, 2) if run.wall else None,
            "errors": run.errors, "error_kinds": run.error_kinds(),
            "cpu_ms_per_turn": run.cpu_ms,
            **{kind: summary(run.ms(kind)) for kind in KINDS}}


# ---------------------------------------------------------------- main

@contextmanager
def stack_at(state: Path | None, *, workers: int = 1, redis: str = "") -> Iterator[Stack]:
    """The stack with its state in ``state`` (kept: trained models and the embedded knowledge
    base are reused by the next run) or in a temporary folder; ``workers`` API and NLU
    processes, which share live streams and turn locks through ``redis``."""
    extra = {"PARLEY_STREAM_URL": redis} if workers > 1 else {}
    if state is not None:
        state.mkdir(parents=True, exist_ok=True)
        with running_stack(state, extra, workers=workers) as stack:
            yield stack
        return
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), extra,
                                                             workers=workers) as stack:
        yield stack


async def bench(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    workload = Workload()
    client = Client(base_url, per_conversation=args.per_conversation)
    report: dict[str, Any] = {"load_before": load(), "runs": []}
    try:
        await sequential(client, workload, args.warmup)
        seq_run = closed_run = None
        if "sequential" in args.modes:
            seq_run = await metered(sequential(client, workload, args.turns))
            print_run(seq_run)
        if "closed" in args.modes:
            closed_run = await metered(closed_loop(client, workload, args.turns,
                                                   args.concurrency))
            print_run(closed_run)
        runs = [r for r in (seq_run, closed_run) if r is not None]
        if "open" in args.modes:
            runs.append(await metered(open_loop(client, workload, args.rate, args.duration)))
            print_run(runs[-1])
        best = None
        if "find-rate" in args.modes:
            steps, best = await find_rate(client, workload, start=args.start_rate,
                                          step=args.rate_step, duration=args.duration,
                                          limit_ms=args.p95_limit, max_steps=args.max_steps)
            runs += steps
            print(f"highest rate with knowledge p95 <= {args.p95_limit:g} ms: {best:g} turns/s")
    finally:
        await client.aclose()
    report["runs"] = [run_report(r) for r in runs]
    report["load_after"] = load()
    if seq_run is not None:
        greeting, knowledge = seq_run.ms("greeting"), seq_run.ms("knowledge")
        report |= {"greeting_p50_ms": round(percentile(greeting, .5), 1),
                   "knowledge_p50_ms": round(percentile(knowledge, .5), 1),
                   "greeting_p95_ms": round(percentile(greeting, .95), 1),
                   "knowledge_p95_ms": round(percentile(knowledge, .95), 1),
                   "knowledge_over_greeting_p50": round(percentile(knowledge, .5)
                                                        / percentile(greeting, .5), 2)}
    if closed_run is not None:
        report |= {"concurrency": args.concurrency,
                   "greeting_p50_ms_closed": round(percentile(closed_run.ms("greeting"), .5), 1),
                   "knowledge_p50_ms_closed": round(percentile(closed_run.ms("knowledge"), .5),
                                                    1),
                   f"greeting_p95_ms_closed{args.concurrency}":
                       round(percentile(closed_run.ms("greeting"), .95), 1),
                   f"knowledge_p95_ms_closed{args.concurrency}":
                       round(percentile(closed_run.ms("knowledge"), .95), 1),
                   "throughput_closed": round(len(closed_run.ms()) / closed_run.wall, 2)}
    report["max_rate_at_p95_1s"] = best
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["sequential", "closed"],
                        choices=["sequential", "closed", "open", "find-rate"])
    parser.add_argument("--turns", type=int, default=200,
                        help="turns per sequential / closed-loop run, half of each kind")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop at this rate (turns/s); adds the open mode")
    parser.add_argument("--find-rate", action="store_true", help="adds the find-rate mode")
    parser.add_argument("--duration", type=float, default=60, help="seconds per open-loop run")
    parser.add_argument("--start-rate", type=float, default=0.5)
    parser.add_argument("--rate-step", type=float, default=1.5)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--p95-limit", type=float, default=1000, help="knowledge p95, ms")
    parser.add_argument("--per-conversation", type=int, default=10,
                        help="turns before a conversation is replaced by a new one")
    parser.add_argument("--state", type=Path, default=None,
                        help="keep the stack's state (models, knowledge base) here")
    parser.add_argument("--report", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--workers", type=int, default=1,
                        help="API and NLU processes (parley run --workers); more than one "
                             "shares streams and locks through --redis")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14",
                        help="Redis for --workers > 1 (its keys are Parley's prefixed ones)")
    args = parser.parse_args()
    if args.rate is not None and "open" not in args.modes:
        args.modes.append("open")
    if "open" in args.modes and args.rate is None:
        parser.error("the open mode needs --rate")
    if args.find_rate and "find-rate" not in args.modes:
        args.modes.append("find-rate")
    global METER
    with stack_at(args.state, workers=args.workers, redis=args.redis) as stack:
        METER = CpuMeter(stack)
        print(f"stack ready; {load()}", flush=True)
        report = asyncio.run(bench(stack.api_url, args))
    report["command"] = " ".join(["bench/turn_latency.py", *sys.argv[1:]])
    report["workers"] = args.workers
    print(f"after: {report['load_after']}")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
