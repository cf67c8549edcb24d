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


MESSAGES = "messages"


class Chat(Removal):
    """Chat messages and the response: segments are the messages' words or sentences
    (each message's content cut as a ``Text``), or with ``MESSAGES`` whole messages. A
    masked message keeps its role; masked wholly, its content is empty."""

    def __init__(self, messages: list[tuple[str, str]], response: str, segments: str) -> None:
        self.roles = tuple(role for role, _ in messages)
        self.contents = tuple(content for _, content in messages)
        self.response = response
        self.whole = segments == MESSAGES
        self.texts = [] if self.whole else [Text(c, segments) for c in self.contents]
        counts = [1] * len(messages) if self.whole else [t.segments for t in self.texts]
        self.bounds = np.concatenate([[0], np.cumsum(counts)]).astype(int)

    @property
    def segments(self) -> int:
        return int(self.bounds[-1])

    def items(self) -> list[dict[str, object]]:
        """Each segment as the response describes it: its text, its [start, end) in its
        message's content, and the message's index."""
        if self.whole:
            return [
                {"name": c, "span": [0, len(c)], "message": i} for i, c in enumerate(self.contents)
            ]
        return [
            {**item, "message": i}
            for i, text in enumerate(self.texts)
            for item in text.segmented.items()
        ]

    def masked(self, kept: np.ndarray) -> np.ndarray:
        kept = np.asarray(kept, dtype=bool)
        columns = []
        for i, content in enumerate(self.contents):
            part = kept[:, self.bounds[i] : self.bounds[i + 1]]
            if self.whole:
                columns.append([content if k else "" for k in part[:, 0].tolist()])
            else:
                columns.append(self.texts[i].masked(part).tolist())
        prompts: list[str | tuple[tuple[str, str], ...]] = [
            tuple(zip(self.roles, contents, strict=True)) for contents in zip(*columns, strict=True)
        ]
        return _rows(prompts, self.response)
