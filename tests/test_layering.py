"""The architecture's promise: the numeric core and the pipeline know nothing of MLflow or the
config framework, and a synthetic set file is read once, where the settings are parsed."""

from __future__ import annotations

import ast

import pytest
from conftest import ROOT

CORE = ["classvis.pipeline", "classvis.stages", "classvis.runsettings", "classvis.fit",
        "classvis.distill", "classvis.extract", "classvis.priors", "classvis.augment",
        "classvis.models", "classvis.evaluate", "classvis.privacy", "classvis.compress",
        "classvis.swap", "classvis.data", "classvis.datafiles", "classvis.registry",
        "classvis.loaders", "classvis.runrecords", "classvis.artifacts", "classvis.given_teacher"]


FRAMEWORKS = ("mlflow", "omegaconf", "hydra")
EDGE = ("classvis.track", "classvis.app", "classvis.from_config", "classvis.sweep",
        "classvis.sweepresult",
        "classvis.record")
# the tracking group's settings: plain dataclasses in a package whose face imports nothing
SETTINGS_ONLY = {"classvis.track", "classvis.track.settings"}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.AST, package: str, known: set[str]) -> set[str]:
    """Every module ``tree`` imports, wherever (a function's lazy import counts), except under
    ``if TYPE_CHECKING``."""
    found: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if _is_type_checking(node):
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names
                         if f"{base}.{alias.name}" in known)
    return found


def import_graph() -> dict[str, set[str]]:
    """classvis's modules, each with the modules it imports (read from the source, not run)."""
    source = ROOT / "src"
    paths = {path: ".".join(path.relative_to(source).with_suffix("").parts)
             for path in sorted((source / "classvis").rglob("*.py"))}
    modules = {path: name.removesuffix(".__init__") for path, name in paths.items()}
    known = set(modules.values())
    graph = {}
    for path, module in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        graph[module] = _imports(ast.parse(path.read_text()), package, known)
    return graph


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module importing ``start`` imports, directly or not (a module's packages too)."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        module = pending.pop()
        parts = module.split(".")
        for name in (".".join(parts[:end]) for end in range(1, len(parts) + 1)):
            if name not in seen:
                seen.add(name)
                pending.extend(graph.get(name, ()))
    return seen - {start}


@pytest.mark.parametrize("module", CORE)
def test_the_numeric_core_imports_no_tracking_or_config_framework(module):
    """Read from the import graph, lazy imports included: a core module that imported MLflow
    inside a function would pass a test of ``sys.modules`` and still tie the core to it."""
    graph = import_graph()
    assert module in graph
    reach = reached(graph, module)
    assert sorted(name for name in reach if name.split(".")[0] in FRAMEWORKS) == []
    assert sorted(name for name in reach if name.startswith(EDGE) and name not in SETTINGS_ONLY
                  ) == []


def test_the_import_graph_sees_lazy_imports():
    graph = import_graph()
    assert "mlflow" in reached(graph, "classvis.track.runs")  # imported inside functions only
    assert "classvis.track.retry" in reached(graph, "classvis.record")


def test_a_synthetic_set_file_is_read_once_when_the_settings_are_parsed(tmp_path, monkeypatch):
    import torch
    from test_config import settings_for

    from classvis import pipeline
    from classvis.synthetic import SyntheticSet

    path = tmp_path / "set.safetensors"
    SyntheticSet(torch.rand(2, 1, 8, 8), torch.randn(2, 2), torch.tensor([0, 1]), ["a", "b"],
                 {"teacher": "linear", "seed": "0"}).save(path)
    reads = []
    original = SyntheticSet.load.__func__

    def counting(cls, file, *args, **kwargs):
        reads.append(file)
        return original(cls, file, *args, **kwargs)

    monkeypatch.setattr(SyntheticSet, "load", classmethod(counting))
    settings = settings_for("dataset=synthetic", f"dataset.path={path}", "privacy.enabled=false",
                            "trainer.student.steps=3", "device=cpu")
    assert settings.synthetic_file is not None and len(reads) == 1
    result = pipeline.run(settings)
    assert len(reads) == 1                     # the pipeline used the parsed record
    assert result.data is None and result.class_names == ["a", "b"]
    assert result.test_unavailable == "the file does not record its source dataset"


def test_every_mlflow_call_goes_through_the_tracking_module():
    """One home for tracking: only the ``track`` package imports MLflow (so every store call
    retries while a store is busy); the report and export read runs back through its ``Store``."""
    importers = []
    for path in sorted((ROOT / "src" / "classvis").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name == "mlflow" or name.startswith("mlflow.") for name in names):
                importers.append(path.relative_to(ROOT / "src").as_posix())
    assert importers and {path.rsplit("/", 1)[0] for path in importers} == {"classvis/track"}
