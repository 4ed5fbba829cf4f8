"""The stage packages import each other one way only (data flows one way)."""
import ast
from pathlib import Path

from tests.conftest import ROOT

STAGES = ("data", "models", "training", "export", "tuning", "pipeline", "serve")


def stage_imports() -> dict[str, set[str]]:
    """Package -> other stage packages its sources import, at top level or inside functions."""
    graph = {stage: set() for stage in STAGES}
    for stage in STAGES:
        for source in (ROOT / stage).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                graph[stage].update(name.split(".")[0] for name in names
                                    if name.split(".")[0] in STAGES and
                                    name.split(".")[0] != stage)
    return graph


def cycle_in(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of packages, or None (depth-first search)."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path + [node, target]
            if target not in state:
                found = visit(target, path + [node])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_stage_packages_import_one_way():
    graph = stage_imports()
    assert cycle_in(graph) is None, f"import cycle: {' -> '.join(cycle_in(graph))}"
    assert graph["data"] == set()  # the lowest stage: importable without the others
    assert "pipeline" not in set().union(*(graph[s] for s in STAGES if s != "pipeline"))
    assert graph["serve"] <= {"data"}  # a deployment needs data/ and serve/ only


def test_readme_stage_table_lists_the_stages_in_import_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## How it is built"):readme.index("Reference:")]
    order = [stage for stage in STAGES
             if f"| `{stage}/` |" in table]
    positions = [table.index(f"| `{stage}/` |") for stage in order]
    assert len(order) == len(STAGES) and positions == sorted(positions)


def test_every_file_readme_links_to_is_in_git():
    """README's links and images point at tracked files (an ignore pattern once hid the
    benchmark's Pareto image from git while README showed it)."""
    import re
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    tracked_dirs = {str(Path(name).parent) for name in tracked}
    links = re.findall(r"\]\(([^)#\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    local = [link.rstrip("/") for link in links if "://" not in link]
    assert local  # README links to its result files
    missing = [link for link in local if link not in tracked and link not in tracked_dirs]
    assert not missing, f"README links to files git does not track: {missing}"


def module_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (top level or inside functions; `from pkg
    import name` counts as pkg.name when that is a module, else as pkg)."""
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts)
               for stage in STAGES for path in (ROOT / stage).rglob("*.py")}
    modules = {name.removesuffix(".__init__") for name in modules}
    graph = {name: set() for name in modules}
    for name in modules:
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}"
                           if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            else:
                continue
            graph[name].update(target for target in targets
                               if target in modules and target != name)
    return graph


def test_no_module_imports_another_in_a_circle():
    graph = module_imports()
    assert "data.corpus.formats" in graph and graph["serve.tag"]  # the graph was read
    found = cycle_in(graph)
    assert found is None, f"module import cycle: {' -> '.join(found)}"


def test_models_holds_the_network_the_crf_and_the_config_only():
    assert sorted(path.name for path in (ROOT / "models").glob("*.py")) == [
        "__init__.py", "config.py", "crf.py", "ensemble.py", "tagger.py"]


def long_functions(limit: int, stages=STAGES) -> list[str]:
    found = []
    for stage in stages:
        for path in (ROOT / stage).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > limit:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                     f"({lines} lines)")
    return found


def test_no_function_is_longer_than_80_lines_and_the_benchmarks_60():
    assert long_functions(80) == []
    assert [f for f in long_functions(60, ("pipeline",)) if "pipeline/bench/" in f] == []


def test_long_functions_are_found(tmp_path, monkeypatch):
    """The checker finds a long function (so the test above can fail)."""
    import tests.test_structure as module

    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(85))
    (tmp_path / "pkg" / "m.py").write_text(f"def long():\n{body}\n")
    monkeypatch.setattr(module, "ROOT", tmp_path)
    assert long_functions(80, ("pkg",)) == ["pkg/m.py:1 long (86 lines)"]
