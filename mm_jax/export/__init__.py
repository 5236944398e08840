"""Export stage: a JAX decoder run -> a PyTorch / Hugging Face directory, and back.

Modules:
  hf:       the decoder's name map (JAX tree <-> Llama tensor names), config.json and generation_config.json.
  aux_maps: the text encoder (BertModel names) and motion tokenizer (Conv1d layout) maps.
  writer:   a streaming, sharding safetensors writer (one tensor in memory at a time).
  run:      :func:`export_run`, what ``mm-jax export`` calls.
  verify:   logit and greedy parity of an export against the JAX model (needs torch).
  importer: :func:`import_torch`, an export -> an orbax run (``mm-jax import-torch``).

The torch runtime that loads an export is :mod:`mm_jax.torch_port` (no JAX there).
Nothing here imports torch at module level.
"""
