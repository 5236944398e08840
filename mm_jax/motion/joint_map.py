"""Match a BVH skeleton's joints to the 22 SMPL joints (stage: motion I/O).

With ``naming="auto"`` names are compared after lower-casing,
dropping a namespace (``mixamorig:``, ``mixamorig1:``...), a ``Bip01 `` /
``Character1_`` prefix and every non-alphanumeric character. Each SMPL limb
joint takes the first candidate present (SMPL, LAFAN1/Ubisoft, Mixamo, CMU,
Biovision, 3ds Max biped and Unreal spellings, e.g. hip <- LeftUpLeg, L_Hip,
Bip01 L Thigh, thigh_l), ankles before toes and upper arms before collars, so
SMPL's "left_foot" (a toe) and Mixamo's "LeftFoot" (an ankle) never clash.
Spine and collars are found from the tree, not names: spine3 is the lowest
common ancestor of the neck and both upper arms; the source joints strictly
after the pelvis up to it form the spine chain; spine1 = its first, spine3 its
last and spine2 its middle joint. A chain of two leaves spine2 *virtual*, one
leaves spine1 and spine2 virtual; a collar is the first joint between spine3
and the upper arm, virtual if there is none; toes are optional. A virtual
joint keeps its SMPL rest bend (local rotation identity). ``naming`` may also
be a dict ``{smpl_name: source_name}``: its entries win, the tables fill the rest.
"""

from __future__ import annotations

import re
from typing import Mapping

from mm_jax.errors import ConfigError, DataError
from mm_jax.motion import skeleton
from mm_jax.motion.bvh import BvhSkeleton

J_SMPL = skeleton.JOINT_NAMES
REQUIRED = tuple(
    n for n in J_SMPL if not n.startswith(("spine", "left_collar", "right_collar", "left_foot", "right_foot"))
)
_LIMB_BASES = (  # resolution order matters: ankles before toes, upper arms before collars
    ("hip", ("upleg", "upperleg", "thigh", "hip", "femur")),
    ("knee", ("leg", "lowleg", "lowerleg", "knee", "calf", "shin", "tibia")),
    ("ankle", ("ankle", "foot")),
    ("foot", ("toebase", "toe", "toes", "ball", "toe0", "foot")),
    ("shoulder", ("arm", "uparm", "upperarm", "shoulder", "humerus")),
    ("elbow", ("forearm", "lowarm", "lowerarm", "elbow")),
    ("wrist", ("hand", "wrist")),
)
_CENTER = {"pelvis": ("hips", "pelvis", "hip"), "neck": ("neck", "neck1", "neck01"), "head": ("head",)}
_PREFIX = re.compile(r"^(bip0*\d+|character\d*_)")


def normalize_name(name: str) -> str:
    """'mixamorig:LeftUpLeg' -> 'leftupleg', 'Bip01 L Thigh' -> 'lthigh', 'L_Hip' -> 'lhip'."""
    low = name.strip().lower().rsplit(":", 1)[-1]
    low = _PREFIX.sub("", re.sub(r"^mixamorig\d*_", "", low))
    return re.sub(r"[^a-z0-9]", "", low)


def _candidates(smpl_name: str) -> tuple[str, ...]:
    if smpl_name in _CENTER:
        return _CENTER[smpl_name]
    side, kind = smpl_name.split("_", 1)
    s = side[0]
    bases = dict(_LIMB_BASES)[kind]
    return tuple(c for b in bases for c in (f"{side}{b}", f"{s}{b}", f"{b}{side}", f"{b}{s}"))


def _ancestors(parents: tuple[int, ...], j: int) -> list[int]:
    out = []
    while j >= 0:
        out.append(j)
        j = parents[j]
    return out  # j itself first, root last


def _by_name(skel: BvhSkeleton, naming) -> dict[str, int]:
    """SMPL name -> source index from the explicit dict (if any), then the name tables."""
    found: dict[str, int] = {}
    if isinstance(naming, Mapping):
        unknown = sorted(set(naming) - set(J_SMPL))
        if unknown:
            raise ConfigError(f"naming keys {unknown} are not SMPL joints; valid: {', '.join(J_SMPL)}")
        index = {n: i for i, n in enumerate(skel.names)}
        absent = sorted(v for v in naming.values() if v not in index)
        if absent:
            raise DataError(
                f"naming names source joints {absent} that the skeleton lacks; it has {list(skel.names)}")
        found = {k: index[v] for k, v in naming.items()}
    elif naming != "auto":
        raise ConfigError(f"naming must be 'auto' or a dict {{smpl_name: source_name}}, got {naming!r}")
    norm: dict[str, int] = {}
    for i, n in enumerate(skel.names):
        norm.setdefault(normalize_name(n), i)
    limbs = [f"{side}_{kind}" for kind, _ in _LIMB_BASES for side in ("left", "right")]
    order = ["pelvis", "neck", "head", *limbs]
    for name in (n for n in order if n not in found):
        used = set(found.values())
        hit = next((norm[c] for c in _candidates(name) if c in norm and norm[c] not in used), None)
        if hit is not None:
            found[name] = hit
    return found


def match_skeleton(skel: BvhSkeleton, naming: str | Mapping[str, str] = "auto") -> tuple[int | None, ...]:
    """Source joint index for each of the 22 SMPL joints (None: virtual, see module docstring).

    Raises:
      DataError: a required SMPL joint has no match (the message lists them and
        the source's joint names), or the matches break the SMPL tree order.
    """
    found = _by_name(skel, naming)
    missing = [n for n in REQUIRED if n not in found]
    if missing:
        raise DataError(
            f"cannot map the skeleton onto SMPL: no source joint for {missing}; "
            f"the source joints are {list(skel.names)} (pass naming={{smpl_name: source_name}})"
        )
    par = skel.parents
    arm_l, arm_r, neck = (_ancestors(par, found[n]) for n in ("left_shoulder", "right_shoulder", "neck"))
    chest = next(a for a in neck if a in arm_l and a in arm_r)
    spine = _ancestors(par, chest)
    if found["pelvis"] not in spine[1:]:
        raise DataError(
            f"the chest {skel.names[chest]!r} (joint of the neck and both arms) is not below the pelvis")
    chain = spine[: spine.index(found["pelvis"])][::-1]  # pelvis-exclusive ... chest-inclusive
    found.setdefault("spine3", chain[-1])
    if len(chain) >= 2:
        found.setdefault("spine1", chain[0])
    if len(chain) >= 3:
        found.setdefault("spine2", chain[(len(chain) - 1) // 2])
    for side, path in (("left", arm_l), ("right", arm_r)):
        between = path[1: path.index(chest)]
        if between:
            found.setdefault(f"{side}_collar", between[-1])
    src = tuple(found.get(n) for n in J_SMPL)
    _check_tree(skel, src)
    return src


def _check_tree(skel: BvhSkeleton, src: tuple[int | None, ...]) -> None:
    for j, s in enumerate(src):
        p = skeleton.PARENTS[j]
        while p >= 0 and src[p] is None:
            p = skeleton.PARENTS[p]
        if s is not None and p >= 0 and src[p] not in _ancestors(skel.parents, s)[1:]:
            raise DataError(
                f"SMPL {J_SMPL[j]!r} matched source {skel.names[s]!r}, which is not below "
                f"{skel.names[src[p]]!r} (matched to SMPL {J_SMPL[p]!r}); pass naming= explicitly"
            )
