"""The package's architecture as a test: imports only go down the layer stack, and no
module-level import cycle exists anywhere in the package."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "detectron2"

# Bottom to top. A module may import from its own layer or any layer below it.
LAYERS = [
    {"_C", "layers"},
    {"structures"},
    {"utils"},
    {"config", "checkpoint"},
    {"data", "solver"},
    {"modeling", "evaluation", "tracking"},
    {"engine"},
    {"model_zoo", "export", "doctor", "tools", "projects"},
]


def _layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("", "__init__"):
        return len(LAYERS)  # the package root may re-export anything
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: top-level subpackage '{top}' is not placed in LAYERS")


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _module_level_imports(path: pathlib.Path, module: str):
    """detectron2 modules imported when `module` is imported (not inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    yield f"{target}.{alias.name}"  # may be a submodule or a name
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    yield from visit(getattr(node, field, []) or [])
            elif isinstance(node, ast.ExceptHandler):
                yield from visit(node.body)

    return [name for name in visit(tree.body) if name == "detectron2" or name.startswith("detectron2.")]


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "model_zoo/configs" not in p.as_posix()}


def _resolve(name: str, modules) -> str:
    """The module an imported name lives in (strips a trailing attribute name)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def test_imports_only_go_down_the_layers():
    modules = _modules()
    violations = []
    for module, path in modules.items():
        if module == "detectron2":
            continue
        for name in _module_level_imports(path, module):
            target = _resolve(name, modules)
            if target and target != "detectron2" and _layer_of(target) > _layer_of(module):
                violations.append(f"{module} imports {target}")
    assert not violations, "upward imports:\n" + "\n".join(sorted(violations))


def test_no_import_cycles():
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = {_resolve(n, modules) for n in _module_level_imports(path, module)}
        # A package's __init__ importing its own submodules is not a cycle to report.
        graph[module] = {t for t in targets if t and t != module and not t.startswith(module + ".")}
        graph[module].discard("detectron2")

    state, stack, cycles = {}, [], []

    def dfs(node):
        state[node] = "active"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "active":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            dfs(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
