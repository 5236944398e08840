"""``mm-jax sweep plan``: per point, the mesh for a named device and the multi-host command (stage: sweep).

Input: a :class:`SweepSpec` whose ``launch`` names the device kind, the
devices per slice and the processes (hosts) per slice. Output: one dict per
point with its sizes, steps, lr, the mesh and the memory plan behind it
(:func:`mm_jax.train.plan.run_plan`: the step ``mm-jax train`` compiles,
planned on fake CPU devices), and the exact commands a team launches:

1. on every host of the point's slice, the existing multi-host entry point
   ``mm-jax train ... --coordinator HOST:PORT --num-processes P --process-id i``
   into ``OUT/points/<id>``;
2. afterwards, on one host that sees ``OUT``, ``mm-jax sweep run FILE --out
   OUT --point <id>``: the point is already trained, so it is only scored
   with the fixed evaluator and appended to ``OUT/runs.jsonl``.

Points run on separate slices write separate ``runs.jsonl`` files;
``mm-jax sweep merge A B ... --out OUT`` merges them (a point listed twice
keeps its last finished line).

Mesh choice: a mesh pinned in ``launch.meshes[size]`` is used as is (and
checked when a device is named); otherwise, with a device named, candidates
from pure data parallelism towards pure FSDP (``data * fsdp = devices``,
tensor 1) are planned in turn and the first that fits 90% of the device
wins; with no device, the experiment's own mesh is printed unplanned.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from typing import Any

from mm_jax import configs, train
from mm_jax.errors import ConfigError
from mm_jax.sharding import MeshConfig
from mm_jax.sweep.points import Point, expand, experiment
from mm_jax.sweep.spec import SweepSpec
from mm_jax.train.config import ExperimentConfig
from mm_jax.train.plan import run_plan

log = logging.getLogger(__name__)

FLAGGED = ("shards_dir=", "tokenizer_run=", "train.steps=")


def _candidates(num_devices: int, batch: int) -> list[dict[str, int]]:
    """(data, fsdp, 1) meshes over ``num_devices``, most data-parallel first, whose size divides the batch."""
    out = []
    fsdp = 1
    while fsdp <= num_devices:
        if num_devices % fsdp == 0 and batch % num_devices == 0:
            out.append({"data": num_devices // fsdp, "fsdp": fsdp, "tensor": 1})
        fsdp *= 2
    if not out:
        raise ConfigError(f"global batch {batch} is not divisible by the slice's {num_devices} devices")
    return out


def _with_mesh(exp: ExperimentConfig, mesh: dict[str, int]) -> ExperimentConfig:
    return dataclasses.replace(exp, mesh=MeshConfig(**mesh))


def choose_mesh(spec: SweepSpec, point: Point, exp: ExperimentConfig, *, check: bool) -> tuple[dict, dict | None]:
    """(mesh, its memory plan or None): the pinned mesh, or the first candidate that fits the device."""
    launch = spec.launch
    pinned = launch.meshes.get(point.size.name)
    if pinned is not None:
        mesh = {k: int(pinned.get(k, 1)) for k in ("data", "fsdp", "tensor")}
        plan = run_plan(_with_mesh(exp, mesh), launch.device) if check and launch.device else None
        return mesh, plan
    if launch.device is None:  # nothing to plan against: the experiment's own mesh (-1 = all devices)
        return {"data": exp.mesh.data, "fsdp": exp.mesh.fsdp, "tensor": exp.mesh.tensor}, None
    for mesh in _candidates(launch.num_devices, exp.pipeline.global_batch_size):
        plan = run_plan(_with_mesh(exp, mesh), launch.device)
        if plan["fits"]:
            return mesh, plan
    raise ConfigError(f"point {point.id}: no (data, fsdp) mesh over {launch.num_devices} devices fits a "
                      f"{launch.device}; add tensor parallelism (pin a mesh) or use more devices")


def _model_sets(base: ExperimentConfig, exp: ExperimentConfig) -> list[str]:
    """``model.k=v`` for every model field where the point differs from the base preset."""
    sets = []
    for f in dataclasses.fields(exp.model):
        a, b = getattr(base.model, f.name), getattr(exp.model, f.name)
        if a != b:
            value = ",".join(str(v) for v in b) if isinstance(b, tuple) else str(b)
            sets.append(f"model.{f.name}={value}")
    return sets


def train_command(spec: SweepSpec, point: Point, exp: ExperimentConfig, mesh: dict[str, int], out: str) -> str:
    """The ``mm-jax train`` line every host of the point's slice runs (``$PROCESS_ID`` differs per host)."""
    sets = [s for s in point.overrides(spec) if not s.startswith(FLAGGED) and not s.startswith("model.")]
    sets += _model_sets(train.preset(spec.base_preset), exp) + [f"mesh.{k}={v}" for k, v in mesh.items()]
    args = ["mm-jax", "train", "--preset", spec.base_preset, "--shards", point.shards_dir,
            "--tokenizer", point.tokenizer.tokenizer_run, "--workdir", f"{out}/points/{point.id}",
            "--steps", str(point.steps), "--resume"]
    for s in sets:
        args += ["--set", s]
    line = " ".join(shlex.quote(a) for a in args)
    if spec.launch.num_processes > 1:
        line += (f" --coordinator {spec.launch.coordinator} --num-processes {spec.launch.num_processes}"
                 " --process-id $PROCESS_ID")
    return line


def plan_sweep(spec: SweepSpec, out: str, sweep_file: str, *, check: bool = False) -> list[dict[str, Any]]:
    """One entry per point: sizes, budget, mesh (+ plan), the train and scoring commands."""
    rows = []
    for point in expand(spec, out):
        exp, _ = experiment(spec, point)
        mesh, plan = choose_mesh(spec, point, exp, check=check)
        m = exp.model
        keep = ("total_bytes", "params_bytes", "opt_state_bytes", "temp_bytes", "fits", "device", "compile_s")
        rows.append({
            "point": point.id, "layers": m.num_layers, "heads": m.num_heads, "width": m.width,
            "total_params": m.num_params(), "non_embedding_params": m.non_vocab_params(),
            "vocab_table_params": m.vocab_table_params(), "steps": point.steps, "lr": point.lr,
            "warmup_steps": point.warmup_steps, "global_batch_size": exp.pipeline.global_batch_size,
            "device": spec.launch.device, "num_devices": spec.launch.num_devices,
            "num_processes": spec.launch.num_processes, "mesh": mesh,
            "plan": None if plan is None else {k: plan.get(k) for k in keep},
            "train_command": train_command(spec, point, exp, mesh, out),
            "score_command": f"mm-jax sweep run {shlex.quote(sweep_file)} --out {shlex.quote(out)} --point {point.id}",
            "config": configs.to_dict(exp)})
    return rows
