"""Scaling-law sweeps of the text-to-motion decoder (stage: sweep).

Modules, in the order a sweep uses them:
  spec:     the declarative sweep file (YAML/JSON) -> frozen :class:`SweepSpec`.
  points:   the grid (sizes x tokenizers x data fractions x seeds) as :class:`Point` s with their
            steps, width-aware lr and warm-up, and each point's :class:`ExperimentConfig`.
  subset:   shards of a fraction of the train split (the data-size axis).
  runner:   ``run_sweep(spec, out)``: train with ``mm_jax.train.loop.run`` (resumable), score, record.
  evaluate: the one fixed evaluator on a point (FID with bootstrap interval, R-precision, MM-Dist,
            diversity) and the tokenizer's FID floor.
  record:   the ``runs.jsonl`` schema, reading, merging of slices.
  plan:     per point, the mesh for a named device and the multi-host commands.
  fit:      E + A N^-alpha fits with bootstrap intervals, the compute frontier, extrapolation.
  plot:     the PNGs, ``scaling_fit.json`` and ``scaling_table.md``; report: the printed summary.

The FLOP convention and MFU live in :mod:`mm_jax.perf`.
"""
