"""Verb-phrase templates of the in-place primitives added in generator version 2 (stage: synthetic data).

Same conventions as :mod:`mm_jax.motion.synth.templates` (``<verb>`` markers,
``{slot}`` fillers, ``(template, condition)`` entries), which merges these into
``TEMPLATES``. Words a template adds become part of ``generator_vocabulary()``:
tests/test_prompt_suite.py checks that every paraphrase prompt of the suite still
has a word the generator never emits (e.g. no "warm up", "shrug" or "shelf").
"""

from __future__ import annotations

_ = ""  # always
IN_PLACE_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "freestyle": (
        ("<dance> freely {tempo}", _),
        ("<do> a freestyle dance {tempo}", _),
        ("<dance> on the spot, moving {poss} arms and legs {tempo}", _),
        ("<move> {poss} whole body to the music {tempo}", _),
        ("<dance> around in place {tempo}", _),
        ("<improvise> a dance {tempo}", _),
    ),
    "twist": (
        ("<twist> {poss} torso from side to side {count}", _),
        ("<rotate> {poss} upper body left and right {count}", _),
        ("<do> torso twists {tempo}", _),
        ("<turn> {poss} upper body from side to side {tempo}", _),
        ("<twist> left and right at the waist {count}", _),
        ("<twist> {poss} trunk back and forth", _),
    ),
    "toe_touch": (
        ("<touch> {poss} toes {count}", _),
        ("<bend> down and <touch> {poss} toes {count}", _),
        ("<bend> forward to touch {poss} toes {count}", _),
        ("<reach> down to {poss} toes with straight legs {count}", _),
        ("<fold> forward at the hips and <touch> {poss} toes", _),
    ),
    "pick_up": (
        ("<pick> something up from the floor with {hand}", _),
        ("<bend> down and <pick> up an object with {hand}", _),
        ("<reach> down to the ground and <pick> something up", _),
        ("<pick> up something from the ground", _),
        ("<crouch> down to pick something up with {hand}", _),
        ("<lift> an object off the floor with {hand}", _),
    ),
    "kneel": (
        ("<kneel> down on {poss} {side} knee {hold}", _),
        ("<get> down on one knee and <stand> back up", _),
        ("<kneel> on one knee {hold}", _),
        ("<drop> to {poss} {side} knee, then <rise>", _),
        ("<go> down on one knee {hold} before getting up", _),
        ("<step> back and <kneel> on the {side} knee", _),
    ),
    "stomp": (
        ("<stomp> {poss} {side} foot {count}", _),
        ("<stomp> on the ground with {leg} {count}", _),
        ("<stamp> {leg} {count}", _),
        ("<raise> {poss} {side} knee and <stomp> down {count}", _),
        ("<stamp> {poss} {side} foot on the floor {count}", _),
    ),
    "leg_swing": (
        ("<swing> {poss} {side} leg back and forth {count}", _),
        ("<swing> {leg} forward and backward {count}", _),
        ("<do> leg swings with {leg}", _),
        ("<kick> {leg} back and forth like a pendulum", _),
        ("<balance> on one leg and <swing> the {side} leg", _),
    ),
    "calf_raise": (
        ("<rise> up onto {poss} toes {count}", _),
        ("<do> {reps_n} calf raises", _),
        ("<lift> {poss} heels off the ground {count}", _),
        ("<go> up on {poss} toes and back down {count}", _),
        ("<do> calf raises", _),
        ("<raise> {poss} heels and <lower> them again {count}", _),
    ),
    "shift_weight": (
        ("<shift> {poss} weight from one foot to the other", _),
        ("<shift> {poss} weight from side to side {tempo}", _),
        ("<stand> in place shifting {poss} weight", _),
        ("<sway> from side to side while standing {tempo}", _),
        ("<rock> {poss} weight between {poss} feet", _),
        ("<stand> idly, shifting from foot to foot", _),
    ),
    "drink": (
        ("<drink> from a cup with {hand}", _),
        ("<take> a drink with {hand}", _),
        ("<raise> a glass to {poss} mouth and <drink>", _),
        ("<drink> something {hold}", _),
        ("<bring> {hand} to {poss} mouth as if drinking", _),
        ("<take> a sip from a bottle {hold}", _),
    ),
    "cross_arms": (
        ("<cross> {poss} arms {hold}", _),
        ("<fold> {poss} arms across {poss} chest", _),
        ("<stand> with {poss} arms crossed {hold}", _),
        ("<cross> {poss} arms over {poss} chest {hold}", _),
        ("<fold> {poss} arms {hold}", _),
    ),
    "talk": (
        ("<gesture> with {poss} hands as if talking", _),
        ("<talk> with {poss} hands {hold}", _),
        ("<move> {poss} hands while explaining something", _),
        ("<gesture> while speaking {hold}", _),
        ("<make> small hand gestures as if in conversation", _),
    ),
    "hands_on_hips": (
        ("<put> {poss} hands on {poss} hips", _),
        ("<stand> with {poss} hands on {poss} hips {hold}", _),
        ("<rest> both hands on {poss} hips {hold}", _),
        ("<place> {poss} hands on {poss} waist", _),
        ("<put> {poss} hands on {poss} hips with elbows out", _),
    ),
    "arm_swing": (
        ("<swing> {poss} arms across {poss} chest {count}", _),
        ("<do> arm swings {count}", _),
        ("<open> {poss} arms wide and <cross> them in front {count}", _),
        ("<swing> both arms open and closed {count}", _),
        ("<swing> {poss} arms back and forth across {poss} body", _),
    ),
}
