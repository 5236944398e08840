"""Captions of curated clips: the captioner and paraphraser interfaces (stage: curation).

A **captioner** is any callable ``(video, shot_index, start, end, track=None) -> [str]``
(a video-language model run on the clip's frames, and on the person's crop
when a shot has several people, in the paper). The one that runs here,
:class:`SidecarCaptioner`, reads ``<video stem>.captions.json`` beside the
video: ``{"<shot index>/t<track id>": [captions], "<shot index>": [captions],
"*": [captions]}`` (a person's own list wins over the shot's, which wins over
``"*"``).

A **paraphraser** is any callable ``(caption, n) -> [str]`` returning up to
``n`` rewrites. The paper asked an LLM for 20 per caption;
:class:`LlmParaphraser` is that interface: it sends :data:`LLM_PROMPT` to a
``complete(prompt) -> str`` function you supply (any chat or completion
client) and parses one rewrite per line. :class:`RuleParaphraser` is the
offline rule-based one (subject, verb and connector synonyms with a seeded
choice, in the style of the embedded generator's captions). Rewrites equal
to the caption or to each other are dropped.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Callable, Sequence

import numpy as np

from mm_jax.errors import DataError

LLM_PROMPT = ("Rewrite the following description of a human motion {n} times. Keep every fact (body parts, "
              "left/right, counts, directions, speed) and change the wording. Answer with one rewrite per line, "
              "no numbering.\nDescription: {caption}")

SUBJECTS = ("a person", "someone", "a man", "a woman", "the person", "a figure", "an individual")
SYNONYMS = {
    "walks": ("strolls", "paces", "moves on foot", "walks"),
    "waves": ("waves", "gestures with a wave", "waves hello"),
    "squats": ("squats", "crouches down", "bends the knees and lowers the body"),
    "stands": ("stands", "remains standing", "stays upright"),
    "forward": ("forward", "ahead", "forwards"),
    "then": ("then", "after that", "next", "afterwards"),
    "both hands": ("both hands", "both arms", "two hands"),
    "to the right": ("to the right", "rightwards", "towards the right"),
    "to the left": ("to the left", "leftwards", "towards the left"),
}
_SUBJECT = re.compile(r"^(a|an|the) (person|man|woman|figure|individual)\b|^someone\b", re.IGNORECASE)


class SidecarCaptioner:
    """Captions from ``<stem>.captions.json`` beside each video (module docstring)."""

    def __call__(self, video: pathlib.Path, shot_index: int, start: int, end: int,
                 track: int | None = None) -> list[str]:
        path = video.with_name(video.stem + ".captions.json")
        if not path.is_file():
            return []
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: unreadable captions file ({e})") from None
        caps = data.get(f"{shot_index}/t{track}", data.get(str(shot_index), data.get("*", [])))
        return [" ".join(str(c).split()) for c in caps if str(c).strip()]


class RuleParaphraser:
    """Offline rewrites by word and phrase substitution, seeded per caption (module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, caption: str, n: int) -> list[str]:
        import zlib

        rng = np.random.default_rng([self.seed, zlib.crc32(caption.encode())])
        out: list[str] = []
        for _ in range(8 * n):
            if len(out) >= n:
                break
            text = _SUBJECT.sub(lambda _m: str(rng.choice(SUBJECTS)), caption.strip(), count=1)
            for word, options in SYNONYMS.items():
                text = re.sub(rf"\b{re.escape(word)}\b", lambda _m, o=options: str(rng.choice(o)), text)
            text = text[:1].upper() + text[1:]
            if text != caption and text not in out:
                out.append(text)
        return out


class LlmParaphraser:
    """The paper's augmentation: ``n`` LLM rewrites per caption through a ``complete(prompt)`` function."""

    def __init__(self, complete: Callable[[str], str], prompt: str = LLM_PROMPT) -> None:
        self.complete, self.prompt = complete, prompt

    def __call__(self, caption: str, n: int) -> list[str]:
        reply = self.complete(self.prompt.format(n=n, caption=caption))
        out: list[str] = []
        for line in reply.splitlines():
            text = re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", line).strip()
            if text and text != caption and text not in out:
                out.append(text)
        return out[:n]


def with_paraphrases(captions: Sequence[str], paraphrase: Callable[[str, int], list[str]], n: int) -> list[str]:
    """The captions followed by up to ``n`` rewrites of each, without repeats."""
    out = list(dict.fromkeys(captions))
    for c in list(out) if n > 0 else []:
        for p in paraphrase(c, n):
            if p not in out:
                out.append(p)
    return out
