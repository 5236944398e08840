"""Natural-language captions of planned sequences (stage: synthetic data).

Input: the steps of a sequence (primitive name, params, facts such as the
distance travelled, and an optional gesture performed at the same time) and
an ``np.random.Generator``. Output: ``n`` distinct paraphrases, e.g.
"A person walks forward slowly, then waves the left hand twice." /
"Someone takes six steps ahead at a slow pace before waving with their left
hand two times."

Variety comes from the subject (with a matching pronoun and possessive),
per-primitive verb-phrase templates and slot synonyms (:mod:`phrases`),
sentence structures for one step, sequencing connectors ("then", "after
that", "before", "and finally", a fronted "after ...ing"), and four ways of
saying two things at once ("while", "as", a participle, "at the same time").
Held-out phrasings (:data:`mm_jax.motion.synth.heldout.HELDOUT_PHRASES`) are
only emitted when ``allow_heldout`` is true (val/test sequences).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from mm_jax.motion.synth import phrases as ph
from mm_jax.motion.synth import templates as tp
from mm_jax.motion.synth.heldout import heldout_pattern

_IRREGULAR_ING = {"lie": "lying", "die": "dying", "tie": "tying", "be": "being", "see": "seeing"}
_DOUBLE = {"run", "sit", "hop", "step", "sidestep", "clap", "jog", "spin", "trip", "stop", "get", "put",
           "drop"}
_SLOT = re.compile(r"\{([a-z_0-9]+)(?::([a-zA-Z]+))?\}")
_VERB = re.compile(r"<([a-z]+)>")
COUNT_SLOTS = (
    "count",
    "steps",
    "reps_n",
    "squats",
    "kicks",
    "lunges",
    "punches",
    "hops",
    "jumps",
    "spins",
    "beats_n",
    "turns",
)


@dataclasses.dataclass(frozen=True)
class StepText:
    """What one step of a sequence says: a primitive, its params, facts, and an optional gesture."""

    name: str
    params: dict
    facts: dict
    gesture: tuple[str, dict] | None = None


def conjugate(verb: str, form: str) -> str:
    """A verb's 'base', 's' (third person singular) or 'ing' form."""
    if form == "base":
        return verb
    if form == "s":
        if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
            return verb + "es"
        if verb.endswith("y") and verb[-2] not in "aeiou":
            return verb[:-1] + "ies"
        return verb + "s"
    if verb in _IRREGULAR_ING:
        return _IRREGULAR_ING[verb]
    if verb in _DOUBLE:
        return verb + verb[-1] + "ing"
    if verb.endswith("e") and not verb.endswith(("ee", "oe", "ye")):
        return verb[:-1] + "ing"
    return verb + "ing"


def _counted(rng, n: int, key: str, adj: str = "") -> str:
    forms = ph.NOUNS["plural"][key]
    plural, singular = forms[0], forms[1]
    if len(forms) > 2 and rng.random() < 0.5:
        i = 2 * int(rng.integers(0, len(forms) // 2))
        plural, singular = forms[i], forms[i + 1]
    adj = f"{adj} " if adj else ""
    if n == 1:
        return (
            f"a {adj}{singular}" if not adj.startswith(("a", "e", "i", "o", "u")) else f"an {adj}{singular}"
        )
    num = ph.NUMBERS[n] if rng.random() < 0.8 or n > 9 else str(n)
    return f"{num} {adj}{plural}"


def _num(rng, n: int) -> str:
    return ph.NUMBERS[n] if n < len(ph.NUMBERS) and rng.random() < 0.8 else str(n)


def _count(rng, n: int) -> str:
    if n == 1:
        return "" if rng.random() < 0.7 else str(rng.choice(ph.COUNT_WORDS[1]))
    return str(rng.choice(ph.COUNT_WORDS[min(n, 6)]))


def _distance(rng, d: float) -> str:
    options = []
    if d < 2.5:
        options.append("a short distance")
    if 2.0 <= d <= 6.0:
        options.append("a few meters")
    if d >= 1.5:
        m = int(round(d))
        options += [f"about {ph.NUMBERS[m] if m < len(ph.NUMBERS) else m} meters", f"roughly {m} meters"]
    return str(rng.choice(options)) if options else "a short distance"


def _pick(rng, options) -> str:
    return str(options[int(rng.integers(0, len(options)))])


def _side_of(p: dict) -> str:
    """The step's side word: its side, its curve's or its stretch's direction."""
    for key in ("side", "curve", "direction"):
        if p.get(key) in ("left", "right", "both"):
            return p[key]
    return "left"


def _slot(slot: str, st: StepText, rng, poss: str) -> str:  # noqa: C901 (a flat lookup table)
    p, f = st.params, st.facts
    side = _side_of(p)
    pace = p.get("pace", "normal")
    table = {
        "forward": lambda: _pick(
            rng, ph.FORWARD if p.get("curve", "none") != "none" else ph.FORWARD + ph.STRAIGHT
        ),
        "speed": lambda: _pick(rng, ph.SPEED_WORDS[pace]),
        "prespeed": lambda: _pick(rng, ph.PRE_SPEED[pace]),
        "curve": lambda: "" if p.get("curve", "none") == "none" else _pick(rng, ph.CURVE),
        "steps": lambda: _num(rng, p["steps"]),
        "steps_opt": lambda: _pick(rng, ["", "a few steps"] if p["steps"] <= 5 else ["", "several steps"]),
        "distance": lambda: _distance(rng, f.get("distance", 0.0)),
        "sideof": lambda: _pick(rng, ph.SIDE_OF),
        "deg": lambda: str(p.get("angle_deg", p.get("turn_deg", 90))),
        "turns": lambda: _pick(rng, ["", "once"] if p["turns"] == 1 else ["twice", "two times"]),
        "spins": lambda: _counted(rng, p["turns"], "spins"),
        "clock": lambda: _pick(rng, ph.NOUNS["clock"][side]),
        "count": lambda: _count(rng, p["reps"]),
        "reps_n": lambda: _num(rng, p["reps"]),
        "beats_n": lambda: _num(rng, p["beats"]),
        "jumps": lambda: _counted(
            rng, p["reps"], "jumps", _pick(rng, ph.NOUNS["height_adj"][p["height"]]) if "height" in p else ""
        ),
        "hops": lambda: _counted(rng, p["reps"], "hops"),
        "squats": lambda: _counted(rng, p["reps"], "squats"),
        "kicks": lambda: _counted(rng, p["reps"], "kicks"),
        "lunges": lambda: _counted(rng, p["reps"], "lunges"),
        "punches": lambda: _counted(rng, p["reps"], "punches"),
        "leg": lambda: _pick(rng, ph.ONE_LEG),
        "hand": lambda: _pick(rng, ph.HAND),
        "fist": lambda: _pick(rng, ph.FIST),
        "hands": lambda: _pick(rng, ph.BOTH_HANDS if side == "both" else ph.HAND),
        "hold": lambda: (
            "" if rng.random() < 0.3 else _pick(rng, ph.HOLD_SHORT if p["hold"] < 1.5 else ph.HOLD_LONG)
        ),
        "side": lambda: side,
        "other": lambda: "right" if side == "left" else "left",
        "poss": lambda: poss,
    }
    if slot in table:
        return table[slot]()
    value = ph.NOUNS[slot]
    key = {
        "pace_adj": pace,
        "height_adj": p.get("height"),
        "height": p.get("height"),
        "depth_adj": p.get("depth"),
        "depth_word": p.get("depth"),
        "kick_height": p.get("height"),
        "distance_word": p.get("distance"),
        "power": p.get("power"),
        "tempo": p.get("tempo"),
        "circle_dir": p.get("direction"),
        "raise_dir": p.get("direction"),
        "bow_adv": p.get("depth"),
        "clock": side,
    }[slot]
    return _pick(rng, value[key])


CONDITIONS = {
    "": lambda p: True,
    "straight": lambda p: p.get("curve", "none") == "none",
    "curved": lambda p: p.get("curve", "none") != "none",
    "fast": lambda p: p.get("pace") == "fast",
    "not180": lambda p: p["angle_deg"] != 180,
    "turn180": lambda p: p["angle_deg"] == 180,
    "turn90": lambda p: p["angle_deg"] == 90,
    "turn45": lambda p: p["angle_deg"] == 45,
    "turn135": lambda p: p["angle_deg"] == 135,
    "single": lambda p: p["turns"] == 1,
    "high": lambda p: p.get("height", p.get("knee")) == "high",
    "multi": lambda p: p["reps"] >= 2,
    "many": lambda p: p["reps"] >= 4,
    "long_single": lambda p: p["distance"] == "long" and p["reps"] == 1,
    "deep": lambda p: p.get("depth") == "deep",
    "half": lambda p: p.get("depth") == "half",
    "slight": lambda p: p.get("depth") == "slight",
    "up": lambda p: p["direction"] == "up",
    "sided": lambda p: p["direction"] in ("left", "right"),
    "forward": lambda p: p["direction"] == "forward",
    "sideways_both": lambda p: p["direction"] == "sideways" and p["side"] == "both",
    "one_side": lambda p: p["side"] in ("left", "right"),
    "both": lambda p: p["side"] == "both",
}


def verb_phrase(st: StepText, rng, poss: str, *, counts: bool = True) -> str:
    """One templated verb phrase (verbs still marked ``<verb>``) for a step's primitive."""
    options = [t for t, cond in tp.TEMPLATES[st.name] if CONDITIONS[cond](st.params)]
    if not counts:
        options = [t for t in options if not any("{" + s + "}" in t for s in COUNT_SLOTS)] or options
    template = _pick(rng, options)
    text = _SLOT.sub(lambda m: _slot(m.group(1), st, rng, poss), template)
    text = text.replace("{side}", _side_of(st.params)).replace("{poss}", poss)
    return text.replace("{deg}", str(st.params.get("turn_deg", "")))


def _render(vp: str, form: str) -> str:
    return _VERB.sub(lambda m: conjugate(m.group(1), form), vp)


def _step_phrase(st: StepText, rng, subject) -> dict[str, str]:
    """The step's clause in each verb form: {'s': ..., 'ing': ..., 'P': (pronoun's form)}."""
    _, pron, poss = subject
    pform = "base" if pron == "they" else "s"
    b = verb_phrase(st, rng, poss)
    if st.gesture is None:
        return {"s": _render(b, "s"), "ing": _render(b, "ing"), "P": _render(b, pform)}
    g = verb_phrase(StepText(st.gesture[0], st.gesture[1], {}), rng, poss, counts=False)
    pattern = _pick(rng, ph.TOGETHER)
    out = {}
    for form in ("s", "ing", "P"):
        real = pform if form == "P" else form
        text = pattern.replace("{P}", pron)
        text = text.replace("{b:ing}", _render(b, "ing")).replace("{g:ing}", _render(g, "ing"))
        text = text.replace("{b:P}", _render(b, pform)).replace("{g:P}", _render(g, pform))
        out[form] = text.replace("{b}", _render(b, real)).replace("{g}", _render(g, real))
    return out


def _fill(pattern: str, clause: dict[str, str], subject, form: str = "s") -> str:
    """Fills a pattern; ``{c}`` takes ``form``: the subject's verb form ('s', or 'P' after a pronoun)."""
    noun, pron, _ = subject
    text = pattern.replace("{S}", noun).replace("{P}", pron)
    for f, key in (("ing", "{c:ing}"), ("P", "{c:P}")):
        text = text.replace(key, clause[f])
    return text.replace("{c}", clause[form])


def caption(steps: list[StepText], rng: np.random.Generator) -> str:
    """One caption of a sequence of steps."""
    subject = ph.SUBJECTS[int(rng.integers(0, len(ph.SUBJECTS)))]
    clauses = [_step_phrase(st, rng, subject) for st in steps]
    if len(clauses) == 1:
        text = _fill(_pick(rng, ph.SINGLE), clauses[0], subject)
    else:
        start = 1
        if rng.random() < 0.15:
            pat = _pick(rng, ph.FRONTED)
            text = (
                pat.replace("{c1:ing}", clauses[0]["ing"])
                .replace("{S}", subject[0])
                .replace("{c2}", clauses[1]["s"])
            )
            start = 2
        else:
            text = _fill(_pick(rng, ph.OPENERS), clauses[0], subject)
        used_before, form = False, "s"
        for i in range(start, len(clauses)):
            links = ph.LAST_LINKS + ph.LINKS if i == len(clauses) - 1 and len(clauses) >= 3 else ph.LINKS
            link = _pick(rng, [lk for lk in links if not (used_before and "before" in lk)])
            used_before |= "before" in link
            text += _fill(link, clauses[i], subject, form)
            form = "P" if "{P}" in link else form
    return _tidy(text)


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.])", r"\1", text)
    text = re.sub(r",\s*,", ",", text)
    text = ". ".join(s[:1].upper() + s[1:] for s in text.split(". "))
    return text.rstrip(".,") + "."


def captions(steps: list[StepText], rng: np.random.Generator, n: int, *, allow_heldout: bool) -> list[str]:
    """``n`` distinct captions (fewer only if the phrasing space is exhausted after many tries)."""
    pattern = heldout_pattern()
    out: list[str] = []
    for _ in range(40 * n):
        text = caption(steps, rng)
        if text in out or (not allow_heldout and pattern.search(text.lower())):
            continue
        out.append(text)
        if len(out) == n:
            break
    return out


# Words emitted by code paths above rather than by the template tables.
_EXTRA_WORDS = (
    "a",
    "an",
    "once",
    "twice",
    "two times",
    "a few steps",
    "several steps",
    "about",
    "roughly",
    "meters",
    "a short distance",
    "a few meters",
    "left",
    "right",
)
_BRACES = re.compile(r"\{[^}]*\}")
_WORD = re.compile(r"[a-z0-9]+")


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, (tuple, list)):
        return [s for v in obj for s in _strings(v)]
    return []


def generator_vocabulary() -> frozenset[str]:
    """Every lower-case word (``[a-z0-9]+``) a caption can contain."""
    templates = [t for entries in tp.TEMPLATES.values() for t, _ in entries]
    texts = _strings(
        [
            ph.SUBJECTS,
            ph.SINGLE,
            ph.OPENERS,
            ph.FRONTED,
            ph.LINKS,
            ph.LAST_LINKS,
            ph.TOGETHER,
            _EXTRA_WORDS,
            templates,
            ph.NUMBERS,
            ph.COUNT_WORDS,
            ph.SPEED_WORDS,
            ph.PRE_SPEED,
            ph.FORWARD,
            ph.STRAIGHT,
            ph.CURVE,
            ph.SIDE_OF,
            ph.DEGREES,
            ph.HOLD_SHORT,
            ph.HOLD_LONG,
            ph.DISTANCE,
            ph.ONE_LEG,
            ph.FIST,
            ph.HAND,
            ph.BOTH_HANDS,
            ph.NOUNS,
        ]
    )
    words: set[str] = {str(i) for i in range(100)}
    for text in texts:
        for verb in _VERB.findall(text):
            words |= {conjugate(verb, form) for form in ("base", "s", "ing")}
        words |= set(_WORD.findall(_BRACES.sub(" ", _VERB.sub(" ", text)).lower()))
    return frozenset(words)
