"""Prompt: the masker for a prompt to a generative model, whose value is the
log-probability of a fixed response given the prompt.

A prompt is a text (``explainers.maskers.text``: the same segments, masking rule and
LIME scheme); each row it plans is a ``Prompted`` — the masked prompt with the response
it is scored against — so rows of different explanations, with different responses,
can share a predictor call. For chat, each segment is a message, and a masked message
keeps its role with empty content (``Chat``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explainers.maskers.text import Removal, Text


@dataclass(frozen=True)
class Prompted:
    """One row to score: log p(response | prompt), the prompt a text or chat messages."""

    prompt: str | tuple[tuple[str, str], ...]  # text, or ((role, content), ...)
    response: str

    @property
    def size(self) -> int:
        """Characters to send, for sizing calls."""
        if isinstance(self.prompt, str):
            return len(self.prompt) + len(self.response)
        return sum(len(c) + len(r) for r, c in self.prompt) + len(self.response)


def _rows(prompts: list[str | tuple[tuple[str, str], ...]], response: str) -> np.ndarray:
    out = np.empty(len(prompts), dtype=object)
    for i, prompt in enumerate(prompts):
        out[i] = Prompted(prompt, response)
    return out


class Prompt(Removal):
    """``explainers.interface.Masker`` for a text prompt and its response."""

    def __init__(self, text: Text, response: str) -> None:
        self.text = text
        self.response = response

    @property
    def segments(self) -> int:
        return self.text.segments

    def masked(self, kept: np.ndarray) -> np.ndarray:
        return _rows(self.text.masked(kept).tolist(), self.response)


class Chat(Removal):
    """A chat prompt, one segment per message: a masked message keeps its role with
    empty content."""

    def __init__(self, messages: list[tuple[str, str]], response: str) -> None:
        self.messages = tuple(messages)
        self.response = response

    @property
    def segments(self) -> int:
        return len(self.messages)

    def masked(self, kept: np.ndarray) -> np.ndarray:
        prompts: list[str | tuple[tuple[str, str], ...]] = [
            tuple(
                (role, content if keep else "")
                for (role, content), keep in zip(self.messages, row, strict=True)
            )
            for row in np.asarray(kept, dtype=bool).tolist()
        ]
        return _rows(prompts, self.response)
