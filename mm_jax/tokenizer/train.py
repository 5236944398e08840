"""Training and evaluation of the wavelet FSQ tokenizer (stage: tokenizer).

``train(model_cfg, train_cfg, data_dir, run_dir)`` fits the autoencoder on
random windows of the dataset's train split with AdamW (warm-up + cosine),
a smooth-L1 loss on normalised features plus velocity and acceleration
terms, validates every ``val_every`` steps, writes ``metrics.jsonl`` and
orbax checkpoints, and resumes exactly from the latest checkpoint (the
metric rows a killed run wrote past it are dropped first). The run directory
is locked for the run (:mod:`mm_jax.runlock`); a :class:`StopRequest`
(SIGINT/SIGTERM) ends it after the current step with a checkpoint there and
``trained_steps`` set to it; a checkpoint that cannot be written stops it
(``StorageError``).

A run directory holds ``tokenizer.json`` (the architecture), ``stats.npz``
(the normaliser of the data it was trained on), ``metrics.jsonl`` and
``checkpoints/``; :func:`mm_jax.tokenizer.artifact.load_tokenizer` reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mm_jax import configs, runlock
from mm_jax.checkpoint import Checkpointer
from mm_jax.errors import CheckpointError, ConfigError
from mm_jax.tracking import MetricsWriter, truncate_metrics
from mm_jax.motion import features as mfeat
from mm_jax.motion.contact import contact_slide_loss
from mm_jax.motion.normalize import Normalizer
from mm_jax.tokenizer import data as tdata
from mm_jax.tokenizer import model as tmodel
from mm_jax.tokenizer.artifact import MotionData, TokenizerArtifact, open_motion_data, stored_config
from mm_jax.tokenizer.reconstruction import evaluate
from mm_jax.tokenizer.config import TokenizerConfig, TokenizerTrainConfig
from mm_jax.train import recipe
from mm_jax.train.interrupt import StopRequest
from mm_jax.train.recipe import TrainState

log = logging.getLogger(__name__)


def make_optimizer(cfg: TokenizerTrainConfig) -> optax.GradientTransformation:
    """AdamW (betas ``adam_b1``, ``adam_b2``) with linear warm-up, then cosine decay to 5% or a constant rate,
    after global-norm clipping (none when ``grad_clip`` is None, as the reference): the shared recipe."""
    schedule = recipe.warmup_cosine(cfg.lr, cfg.warmup_steps, cfg.steps, 0.05, constant=cfg.lr_schedule == "constant")
    return recipe.adamw(schedule, b1=cfg.adam_b1, b2=cfg.adam_b2, weight_decay=cfg.weight_decay,
                        grad_clip=cfg.grad_clip)


_ELEMENT_LOSS = {
    "smooth_l1": lambda a, b: optax.huber_loss(a, b),
    "mse": lambda a, b: jnp.square(a - b),
    "l1": lambda a, b: jnp.abs(a - b),
}


def _velocity_channels(feature_dim: int) -> np.ndarray:
    """Channels of the root and joint velocities in a 272-d frame (all channels otherwise)."""
    if feature_dim != mfeat.FEATURE_DIM:
        return np.arange(feature_dim)
    sl = (mfeat.ROOT_LIN_VEL, mfeat.ROOT_ANG_VEL, mfeat.LOCAL_VEL)
    return np.concatenate([np.arange(s.start, s.stop) for s in sl])


def _position_channels(feature_dim: int) -> np.ndarray:
    """The local-position channels [8:74] of a 272-d frame (all channels otherwise)."""
    if feature_dim != mfeat.FEATURE_DIM:
        return np.arange(feature_dim)
    return np.arange(mfeat.LOCAL_POS.start, mfeat.LOCAL_POS.stop)


def loss_terms(x_hat: jax.Array, x_btf: jax.Array, loss_type: str,
               normalizer: Normalizer | None = None) -> dict[str, jax.Array]:
    """Each unweighted term of :func:`loss_fn` for a reconstruction x_hat of x, both normalised [B, T, F].

    ``foot_contact`` and ``joint_accel`` (the squared error of the global joints' second
    difference, (cm/frame^2)^2) only when ``normalizer`` is given (joints need metres).
    """
    el = _ELEMENT_LOSS[loss_type]
    vc, pc = _velocity_channels(x_btf.shape[-1]), _position_channels(x_btf.shape[-1])
    vel_hat, vel, pos_hat, pos = x_hat[..., vc], x_btf[..., vc], x_hat[..., pc], x_btf[..., pc]
    terms = {
        "recon": el(x_hat, x_btf).mean(),
        "vel": el(vel_hat, vel).mean(),
        "accel": el(jnp.diff(vel_hat, axis=1), jnp.diff(vel, axis=1)).mean(),
        "local_pos": el(pos_hat, pos).mean(),
        "pos_velocity": el(jnp.diff(pos_hat, axis=1), jnp.diff(pos, axis=1)).mean(),
        "pos_accel": el(jnp.diff(pos_hat, n=2, axis=1), jnp.diff(pos, n=2, axis=1)).mean(),
    }
    if normalizer is not None:
        joints_hat = mfeat.joints_from_features_batch(normalizer.denormalize(x_hat))
        joints = mfeat.joints_from_features_batch(normalizer.denormalize(x_btf))
        terms["foot_contact"] = contact_slide_loss(joints_hat, joints)
        acc_err = 100.0 * (jnp.diff(joints_hat, n=2, axis=1) - jnp.diff(joints, n=2, axis=1))
        terms["joint_accel"] = jnp.sum(jnp.square(acc_err), axis=-1).mean()
    return terms


_DIRECT_TERMS = ("recon", "vel", "local_pos")  # at full weight from the first step; the others ramp in


def loss_fn(params: Any, x_btf: jax.Array, mcfg: TokenizerConfig, tcfg: TokenizerTrainConfig,
            normalizer: Normalizer | None = None, step: jax.Array | int = 0):
    """The weighted sum of the terms of :class:`TokenizerTrainConfig` on normalised x [B, T, F].

    ``w_vel`` re-weights the velocity channels of the frame (root and joint
    velocities); the reference's "vel" term is ``w_local_pos`` on channels
    [8:74]. Neither is a time difference of the output. An early time-difference
    penalty on the *whole* output collapsed training to constant codes (normalised
    MSE stuck at the data's variance after 400 steps); the difference terms here
    act on channel groups only: ``w_accel`` the velocity channels' first
    difference, ``w_pos_velocity`` / ``w_pos_accel`` the position channels'
    first / second difference. ``w_foot_contact`` (needs ``normalizer``, to
    recover joints in metres) is :func:`mm_jax.motion.contact.contact_slide_loss`;
    ``w_joint_accel`` (also) the acceleration error of the joints in cm/frame^2.
    The loss sees the decoder's output before ``output_smoothing_frames``;
    ``step`` ramps the auxiliary terms in (``aux_ramp_steps``).
    """
    # The output filter is for decoding only: trained through it, the decoder learns to undo it
    # (val accel. error 13.6 vs 5.6 mm/frame² when the same filter is applied after training; README).
    x_hat, _ = tmodel.reconstruct(params, x_btf, dataclasses.replace(mcfg, output_smoothing_frames=0.0))
    in_joints = tcfg.w_foot_contact > 0 or tcfg.w_joint_accel > 0
    terms = loss_terms(x_hat, x_btf, tcfg.loss_type, normalizer=normalizer if in_joints else None)
    if in_joints and "foot_contact" not in terms:
        raise ConfigError("w_foot_contact or w_joint_accel > 0 needs the data's normalizer to recover joints")
    ramp = jnp.clip(step / tcfg.aux_ramp_steps - 1.0, 0.0, 1.0) if tcfg.aux_ramp_steps else 1.0
    loss = sum(getattr(tcfg, f"w_{name}") * value * (1.0 if name in _DIRECT_TERMS else ramp)
               for name, value in terms.items())
    return loss, {"loss": loss, **terms}


def make_train_step(mcfg: TokenizerConfig, tcfg: TokenizerTrainConfig, opt: optax.GradientTransformation,
                    normalizer: Normalizer | None = None):
    """A pure ``train_step(state, batch) -> (state, metrics)`` (``normalizer``: for ``w_foot_contact``)."""

    def train_step(state: TrainState, x_btf: jax.Array) -> tuple[TrainState, dict]:
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, x_btf, mcfg, tcfg, normalizer, state.step)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return TrainState(state.step + 1, params, opt_state), metrics

    return train_step


def _meta(run_dir: pathlib.Path, tcfg: TokenizerTrainConfig) -> dict:
    """Checkpoint meta: the run's stored TokenizerConfig (its decode-only fields stay the run's own when a
    resume asks for others, so its checkpoints keep matching ``tokenizer.json``) and the train config."""
    return {"tokenizer": stored_config(run_dir), "train": configs.to_dict(tcfg)}


def train(
    mcfg: TokenizerConfig,
    tcfg: TokenizerTrainConfig,
    data_dir: str | pathlib.Path,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Trains a tokenizer; returns the final validation metrics ({} when stopped before any).

    ``stop``: a request (SIGINT/SIGTERM) to stop after the current step, saved
    there (``stop.stopped_at`` is set).

    Raises:
      CheckpointError: ``resume`` with a checkpoint of another config.
      NonFiniteError: the loss became NaN/inf (the last good checkpoint stays).
      LockError: another process is writing ``run_dir``.
      StorageError: a checkpoint or metrics row could not be written (the previous checkpoints stay).
    """
    run_dir = pathlib.Path(run_dir)
    data = open_motion_data(data_dir)
    with runlock.lock_dir(run_dir):
        return _train(mcfg, tcfg, data, run_dir, resume=resume, progress=progress,
                      stop=stop if stop is not None else StopRequest())


def _train(mcfg: TokenizerConfig, tcfg: TokenizerTrainConfig, data: MotionData, run_dir: pathlib.Path, *,
           resume: bool, progress: Callable[[int, int], None] | None, stop: StopRequest) -> dict[str, Any]:
    """:func:`train` inside the run directory's lock."""
    art = TokenizerArtifact.create(run_dir, mcfg, data.normalizer)
    offsets, lengths = tdata.usable_spans(*data.spans("train"), mcfg.window)
    val_split = data.resolve_split(None, preferred="val")
    if val_split != "val":
        log.warning("%s has no val split; validating on its %s split", data.source, val_split)
    opt = make_optimizer(tcfg)
    step_fn = jax.jit(make_train_step(mcfg, tcfg, opt, data.normalizer), donate_argnums=0)
    with contextlib.ExitStack() as cleanup:  # an interrupted run still finishes the checkpoint it started
        ckpt = cleanup.enter_context(Checkpointer(run_dir / "checkpoints", max_to_keep=tcfg.keep_checkpoints,
                                                  save_every=tcfg.ckpt_every))
        state = _initial_state(mcfg, tcfg, opt, ckpt, run_dir, resume)
        truncate_metrics(run_dir, int(state.step))  # rows a killed run wrote past its checkpoint
        writer = cleanup.enter_context(MetricsWriter(run_dir))
        state, val = _loop(state, step_fn, data, offsets, lengths, mcfg, tcfg, ckpt, writer, progress,
                           val_split=val_split, stop=stop, meta=_meta(run_dir, tcfg))
    art.mark_trained(int(state.step))
    return val


def _initial_state(mcfg: TokenizerConfig, tcfg: TokenizerTrainConfig, opt: optax.GradientTransformation,
                   ckpt: Checkpointer, run_dir: pathlib.Path, resume: bool) -> TrainState:
    """Fresh parameters, or the latest checkpoint when resuming (CheckpointError without ``resume``)."""
    params = tmodel.init_params(mcfg, key=jax.random.key(tcfg.seed))
    state = TrainState(jnp.int32(0), params, opt.init(params))
    latest = ckpt.latest_step()
    if latest is not None and not resume:
        raise CheckpointError(
            f"{run_dir} already holds checkpoints (latest step {latest}); pass resume=True "
            "(--resume) to continue it, or choose a new run directory"
        )
    if latest is not None:
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state.to_dict())
        _, tree, _ = ckpt.restore(abstract, expected_meta={"tokenizer": stored_config(run_dir)})
        state = TrainState.from_dict(tree)
        log.info("resumed from step %d", int(state.step))
    return state


def _loop(state, step_fn, data, offsets, lengths, mcfg, tcfg, ckpt, writer, progress, *, val_split,
          stop: StopRequest, meta: dict):
    """The step loop of :func:`train`: sample, step, log, validate (on ``val_split``), checkpoint."""
    start, t0 = int(state.step), time.perf_counter()
    val: dict[str, Any] = {}
    if stop.requested:  # during start-up: no step taken, nothing new to save
        stop.stopped_at = start
        return state, val
    for step in range(start, tcfg.steps):
        batch = tdata.sample_windows(
            data.features, offsets, lengths, window=mcfg.window, batch_size=tcfg.batch_size,
            seed=tcfg.seed, step=step, normalizer=data.normalizer,
        )
        state, metrics = step_fn(state, batch)
        done = step + 1
        halt = stop.requested or ckpt.reached_preemption(done)
        last = done == tcfg.steps or halt
        if done % tcfg.log_every == 0 or last:
            m = {f"train/{k}": v for k, v in recipe.host_metrics(
                metrics, step=done, watched=("loss",), on_bad=ckpt.wait,
                context=lambda: f"the tokenizer's; the last good checkpoint is step {ckpt.latest_step()}").items()}
            m["perf/steps_per_s"] = (done - start) / (time.perf_counter() - t0)
            writer.write(done, m)
        if done % tcfg.val_every == 0 or done == tcfg.steps:
            val = evaluate(state.params, mcfg, data, split=val_split, max_sequences=64)
            writer.write(done, {f"val/{k}": v for k, v in val.items()})
        # Every step: orbax saves on the interval, when forced, and at a preemption step.
        ckpt.save(done, state.to_dict(), meta, force=done % tcfg.ckpt_every == 0 or last)
        if progress is not None:
            progress(done, tcfg.steps)
        if halt:
            stop.stopped_at = done
            break
        ckpt.check()  # a failed background save stops the run here
    return state, val
