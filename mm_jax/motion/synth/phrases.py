"""The words of the captions: slot fillers and sentence structures (stage: synthetic data, captions).

Slot fillers (speed words, directions, counts, side phrases, ...) fill the
``{slot}``s of the verb-phrase templates in :mod:`mm_jax.motion.synth.templates`;
the sentence structures join clauses ("then", "after that", "before", "while").
Every word a caption can contain is written in these two modules or in
``captions._EXTRA_WORDS`` (as data), which is how ``generator_vocabulary()``
can list them all.

Truth: side words follow SMPL (the body's left is +x); "quickly"/"slowly"
follow the sampled pace; counts are the actual repetitions; degrees and
distances are the planned ones, rounded.
"""

from __future__ import annotations

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen")
COUNT_WORDS = {
    1: ("once", "one time"),
    2: ("twice", "two times", "a couple of times", "2 times"),
    3: ("three times", "a few times", "3 times", "thrice"),
    4: ("four times", "a few times", "4 times", "several times"),
    5: ("five times", "several times", "5 times", "a number of times"),
    6: ("six times", "several times", "6 times", "repeatedly"),
}
SPEED_WORDS = {
    "slow": ("slowly", "at a slow pace", "at a leisurely pace", "unhurriedly", "without hurrying"),
    "normal": ("", "", "at a normal pace", "at a steady pace", "at an even pace", "at a comfortable pace"),
    "fast": ("quickly", "fast", "rapidly", "at a fast pace", "hurriedly", "at a quick pace", "briskly"),
}
PRE_SPEED = {
    "slow": ("slowly", "calmly", "gently"),
    "normal": ("", "", "steadily", "calmly"),
    "fast": ("quickly", "rapidly", "hastily", "speedily"),
}
FORWARD = ("forward", "forwards", "ahead")
STRAIGHT = ("straight ahead", "straight forward")  # only for paths that do not curve
CURVE = (
    "curving to the {side}",
    "veering to the {side}",
    "in an arc to the {side}",
    "bending to the {side}",
    "turning gradually to the {side}",
    "while turning {deg} degrees to the {side}",
    "along a path that curves {side}",
)
SIDE_OF = ("the {side}", "{poss} {side}")
DEGREES = ("45", "60", "90", "120", "135", "180")
HOLD_SHORT = ("briefly", "for a moment", "for a second", "for a short moment")
HOLD_LONG = ("for a few seconds", "for a while", "for a couple of seconds", "for some time")
DISTANCE = ("a short distance", "a few meters", "about {meters} meters", "roughly {meters} meters")
ONE_LEG = ("{poss} {side} leg", "the {side} leg", "{poss} {side} foot", "the {side} foot")
FIST = ("{poss} {side} fist", "the {side} fist", "{poss} {side} hand")
HAND = ("{poss} {side} hand", "the {side} hand", "{poss} {side} arm", "the {side} arm")
BOTH_HANDS = ("both hands", "both arms", "{poss} hands", "{poss} arms", "both of {poss} hands")

# Slot fillers that depend on a parameter's value.
NOUNS = {
    "pace_adj": {
        "slow": ("slow", "leisurely", "calm"),
        "normal": ("short", "little", "brief"),
        "fast": ("quick", "fast", "brisk"),
    },
    "height_adj": {"small": ("small", "little", "low"), "high": ("high", "big", "tall")},
    "height": {"small": ("a little", "lightly", "a bit"), "high": ("high", "up high", "as high as possible")},
    "depth_adj": {"half": ("half", "shallow", "partial"), "deep": ("deep", "full", "low")},
    "depth_word": {"half": ("halfway down", "not too deep"), "deep": ("all the way down", "deep", "low")},
    "kick_height": {"low": ("low", "at knee height"), "high": ("high", "up high", "above waist height")},
    "distance_word": {
        "short": ("a short way", "a little", "a small distance"),
        "long": ("far", "a long way", "a big distance"),
    },
    "power": {
        "soft": ("gently", "softly", "lightly"),
        "hard": ("hard", "forcefully", "with force", "powerfully"),
    },
    "tempo": {
        "slow": ("slowly", "to a slow rhythm", "gently", "calmly"),
        "fast": ("energetically", "to a fast beat", "quickly", "with energy"),
    },
    "circle_dir": {"forward": ("forward", "forwards"), "backward": ("backward", "backwards")},
    "raise_dir": {
        "up": ("up", "overhead", "up high", "over {poss} head"),
        "forward": ("forward", "out in front", "straight ahead", "in front of {poss} body"),
        "sideways": ("out to the side", "sideways", "to shoulder height at the side"),
    },
    "clock": {"left": ("counterclockwise", "anticlockwise"), "right": ("clockwise",)},
    "bow_adv": {"slight": ("slightly", "a little"), "deep": ("deeply", "far")},
    "plural": {
        "squats": ("squats", "squat"),
        "kicks": ("kicks", "kick"),
        "lunges": ("lunges", "lunge"),
        "punches": ("punches", "punch"),
        "hops": ("hops", "hop"),
        "jumps": ("jumps", "jump"),
        "spins": ("full spins", "full spin", "full turns", "full turn", "rotations", "rotation"),
    },
}

# Sentence structures: {S} subject, {P} its pronoun, {c} a clause in the subject's verb form,
# {c:ing} / {c:P} in the gerund / the pronoun's form; {b} / {g} a base action and a simultaneous gesture.
SUBJECTS = (
    ("a person", "they", "their"),
    ("a man", "he", "his"),
    ("a woman", "she", "her"),
    ("someone", "they", "their"),
    ("the person", "they", "their"),
    ("a human", "they", "their"),
    ("an individual", "they", "their"),
    ("the man", "he", "his"),
    ("the woman", "she", "her"),
    ("a guy", "he", "his"),
    ("a character", "they", "their"),
    ("the figure", "they", "their"),
    ("a young man", "he", "his"),
    ("a young woman", "she", "her"),
)
SINGLE = (
    "{S} {c}",
    "{S} {c}",
    "{S} is {c:ing}",
    "this is {S} {c:ing}",
    "{S} can be seen {c:ing}",
    "in this clip, {S} {c}",
    "the motion of {S} {c:ing}",
    "here {S} {c}",
)
OPENERS = (
    "{S} {c}",
    "{S} {c}",
    "{S} {c}",
    "first, {S} {c}",
    "{S} starts by {c:ing}",
    "{S} begins by {c:ing}",
    "to begin, {S} {c}",
)
FRONTED = ("after {c1:ing}, {S} {c2}", "having finished {c1:ing}, {S} {c2}")
LINKS = (
    ", then {c}",
    " and then {c}",
    ", and then {c}",
    ". then {P} {c:P}",
    ". after that, {P} {c:P}",
    ", after which {P} {c:P}",
    ". next, {P} {c:P}",
    ". afterwards, {P} {c:P}",
    ", followed by {c:ing}",
    " before {c:ing}",
    ", and after that {c}",
    ". subsequently, {P} {c:P}",
)
LAST_LINKS = (
    ", and finally {c}",
    " and finally {c}",
    ". finally, {P} {c:P}",
    ", and lastly {c}",
    ". in the end, {P} {c:P}",
)
TOGETHER = (
    "{b} while {g:ing}",
    "{g} while {b:ing}",
    "{b}, {g:ing}",
    "{b} and {g} at the same time",
    "{g} as {P} {b:P}",
    "{b} while also {g:ing}",
)
