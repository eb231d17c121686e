"""The recipe, conda_build_config.yaml, env files, pyproject.toml and variants.py agree.

Real `conda render` / `conda-smithy lint` cannot run on this machine; scripts/distro.py
renders Jinja + selectors like conda-build, and the lint rules are checked here.
"""
import os
import re
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import distro  # noqa: E402
from distro import V  # noqa: E402

try:
    import tomllib
except ImportError:  # python 3.8-3.10
    import tomli as tomllib

ROWS = distro.config_rows()
RENDERED = {(r["d2_variant"], r["python"], r["target_platform"], r["d2_arch_gate"] == "yes"): distro.render(r)
            for r in ROWS}


def _read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def _names(specs):
    return [str(s).split()[0] for s in specs]


def _spec(reqs, name):
    found = [" ".join(str(s).split()) for s in reqs if str(s).split()[0] == name]
    assert len(found) <= 1, f"{name} listed twice: {found}"
    return found[0] if found else None


def test_generated_files_match_variants_py():
    assert distro.check() == []


def test_check_catches_a_disagreement(monkeypatch):
    changed = V.VARIANTS[0].__class__(**dict(V.VARIANTS[0].__dict__, pytorch="2.0.0"))
    monkeypatch.setattr(V, "VARIANTS", (changed,) + V.VARIANTS[1:])
    problems = distro.check()
    assert "conda_build_config.yaml differs from what variants.py gives" in problems
    assert "environment.yml differs from what variants.py gives" in problems


def test_config_rows_are_exactly_variants_times_their_pythons():
    expected = [(v.name, p, py, b.gated) for v in V.VARIANTS for p in v.platforms for py in v.pythons for b in v.builds()]
    assert [(r["d2_variant"], r["target_platform"], r["python"], r["d2_arch_gate"] == "yes") for r in ROWS] == expected
    assert {r["target_platform"] for r in ROWS} == {"linux-64", "linux-aarch64"}
    aarch64 = {(r["d2_variant"], r["python"]) for r in ROWS if r["target_platform"] == "linux-aarch64"}
    assert {name for name, _ in aarch64} == {"cu129", "cfcpu"}
    cpu_pythons = {r["python"] for r in ROWS if r["cuda_compiler_version"] == "None"}
    assert {"3.12", "3.13"} <= cpu_pythons
    cfg = yaml.safe_load(_read("conda_build_config.yaml"))
    zipped = set(cfg["zip_keys"][0])
    for key, values in cfg.items():
        if key != "zip_keys" and len(values) > 1:
            assert key in zipped, f"{key} has several values but is not zipped: it would be crossed"
    assert len({len(cfg[k]) for k in zipped}) == 1


@pytest.mark.parametrize("variant", V.VARIANTS, ids=lambda v: v.name)
def test_config_rows_carry_the_variant(variant):
    for row in (r for r in ROWS if r["d2_variant"] == variant.name):
        assert row["pytorch"] == variant.pytorch and row["torchvision"] == variant.torchvision
        assert row["cuda_compiler_version"] == (variant.cuda or "None")
        assert row["torch_cuda_arch_list"] == (variant.arch_list or "None")
        if variant.is_cuda:
            assert row["cuda_compiler"] == ("nvcc" if variant.cuda.startswith("11.") else "cuda-nvcc")
        else:
            assert row["cuda_compiler"] == "None" and row["pytorch_cuda"] == "None"


@pytest.mark.parametrize("key", sorted(RENDERED), ids=lambda k: f"{k[0]}-py{k[1]}-{k[2]}" + ("-gated" if k[3] else ""))
def test_rendered_variant(key):
    name, py, platform, gated = key
    v = V.get_variant(name)
    meta = RENDERED[key]
    reqs = meta["requirements"]
    build, host, run = reqs["build"], reqs["host"], reqs["run"]
    constrained = reqs.get("run_constrained") or []

    assert re.fullmatch(rf"{re.escape(v.build_prefix)}_py{py.replace('.', '')}h[0-9a-f]{{7}}_{meta['build']['number']}",
                        meta["build"]["string"])
    assert meta["build"]["number"] == V.BUILD_NUMBER + (v.gated_priority if gated else v.priority)
    assert meta["package"]["version"] == V.PACKAGE_VERSION

    assert f"gcc_{platform} {v.gcc}" in build and f"gxx_{platform} {v.gcc}" in build
    assert f"sysroot_{platform} 2.17" in build
    cuda_compilers = [b for b in build if "nvcc" in b]
    assert cuda_compilers == ([f"{v.cuda_compiler}_{platform} {v.cuda}"] if v.is_cuda else [])

    pin = f"pytorch {v.pytorch}.* {v.pytorch_build}"
    assert _spec(host, "pytorch") == pin and _spec(run, "pytorch") == pin
    assert _spec(run, "torchvision") == f"torchvision {v.torchvision}.*"
    assert _spec(run, "python") == f"python >={py},<{py.split('.')[0]}.{int(py.split('.')[1]) + 1}.0a0"
    # Exactly one CUDA runtime: never cudatoolkit beside the cuda-* packages.
    assert "cudatoolkit" not in _names(host) + _names(run)
    if v.is_cuda:
        # conda-forge: presence here, the floor (__cuda >={major}) through cuda-version.
        assert _spec(run, "__cuda") == ("__cuda" if v.stack == "conda-forge" else f"__cuda >={v.cuda}")
        assert _spec(run, "cuda-arch") == f"cuda-arch {v.cuda_arch_spec}"
        assert _spec(host, "cuda-arch") == f"cuda-arch {v.cuda_arch_min}"
        assert "cpuonly <0.0a0" in constrained
    else:
        assert "__cuda" not in _names(run) and "cuda-arch" not in _names(run)
        assert "__cuda_arch <0a0" in constrained
    assert (_spec(run, "__cuda_arch") == "__cuda_arch") == gated
    assert gated == (v.gated_priority is not None and "__cuda_arch" in _names(run))
    assert (_spec(run, "mkl") == "mkl <2024.1") == (v.stack == "pytorch")
    assert (_spec(host, "mkl") == "mkl <2024.1") == (v.stack == "pytorch")

    if v.stack == "pytorch" and v.is_cuda:
        assert _spec(run, "pytorch-cuda") == f"pytorch-cuda {v.cuda}.*"
        assert _spec(run, "pytorch-mutex") == "pytorch-mutex ==1.0 cuda"
        assert meta["build"]["ignore_run_exports"] == ["cudatoolkit"]
        assert "cpuonly" not in _names(host)
    elif v.stack == "pytorch":
        assert _spec(run, "pytorch-mutex") == "pytorch-mutex ==1.0 cpu"
        assert "cpuonly" in _names(host) and "pytorch-cuda <0.0a0" in constrained
        assert "pytorch-cuda" not in _names(run)
    elif v.is_cuda:
        assert v.pytorch_build == "cuda*"
        major = int(v.cuda.split(".")[0])
        assert _spec(run, "cuda-version") == f"cuda-version >={v.cuda},<{major + 1}"
        assert _spec(host, "cuda-version") == f"cuda-version {v.cuda}"
        assert "pytorch-mutex" not in _names(run) and "pytorch-cpu <0.0a0" in constrained
    else:
        assert v.pytorch_build == "cpu*" and "pytorch-gpu <0.0a0" in constrained
        assert "cuda-version" not in _names(run) and "pytorch-mutex" not in _names(run)
    if not (v.stack == "pytorch" and v.is_cuda):
        assert "ignore_run_exports" not in meta["build"]
    for section in ("build", "requirements"):  # no key left empty by its selectors
        assert all(value is not None for value in meta[section].values()), meta[section]


def test_variants_are_told_apart_by_build_string():
    for platform in V.PLATFORMS:
        strings = [m["build"]["string"] for k, m in RENDERED.items() if k[2] == platform]
        assert len(set(strings)) == len(strings)
        for v in V.VARIANTS:
            ours = [s for s in strings if s.startswith(v.name)]  # the doctor's glob: name*
            want = len(v.pythons) * len(v.builds()) if platform in v.platforms else 0
            assert len(ours) == want, f"detectron2=*={v.name}* must select exactly {v.name}"


# --- conda-forge lint rules ---------------------------------------------------------------

def test_lint_about_license_maintainers_tests():
    meta = RENDERED[(V.DEFAULT_VARIANT, V.get_variant(V.DEFAULT_VARIANT).pythons[-1], "linux-64", False)]
    about = meta["about"]
    for field in ("home", "summary", "license", "license_file"):
        assert about.get(field), f"about/{field} missing"
    assert about["license"] == "Apache-2.0"
    assert "Apache License" in _read(about["license_file"]) and "Version 2.0" in _read("LICENSE")
    assert meta["extra"]["recipe-maintainers"]
    assert meta["source"] == {"path": ".."}
    test = meta["test"]
    assert {"detectron2", "detectron2.layers"} <= set(test["imports"])
    commands = test["commands"]
    assert "pip check" in commands and "pip" in test["requires"]
    assert "python -m detectron2.utils.collect_env" in commands
    assert "python -m detectron2.doctor" in commands
    assert any("detectron2._C" in c for c in commands)
    assert os.path.exists(os.path.join(ROOT, "recipe", "run_test.py"))  # conda-build runs it


def test_lint_recipe_text():
    text = _read("recipe/meta.yaml")
    assert "noarch" not in text, "a recipe with compilers must not be noarch"
    assert re.search(r"^\s+number:", text, re.M), "build number missing"
    compilers = re.findall(r"\{\{ compiler\('(\w+)'\) \}\}", text)
    assert set(compilers) == {"c", "cxx", "cuda"}
    assert "{{ stdlib('c') }}" in text, "stdlib('c') must sit beside compiler('c')"
    assert re.search(r"\{\{ compiler\('cuda'\) \}\}  # \[cuda_compiler_version != \"None\"\]", text)
    for line in text.splitlines():
        if "# [" in line or "#[" in line:
            assert re.search(r"\S  # \[[^\[\]]+\]$", line), f"selector not in the '  # [expr]' form: {line!r}"


def test_build_sh_semantics_match_build_variant():
    text = _read("recipe/build.sh")
    assert 'export FORCE_CUDA=1' in text and 'export FORCE_CUDA=0' in text
    assert 'export TORCH_CUDA_ARCH_LIST="${torch_cuda_arch_list}"' in text
    assert 'export MAX_JOBS="${CPU_COUNT' in text
    assert "$PYTHON -m pip install . -vv --no-deps --no-build-isolation" in text
    import build_variant

    for v in V.VARIANTS:
        env = build_variant.build_env(v)
        assert env["FORCE_CUDA"] == ("1" if v.is_cuda else "0")
        assert env.get("TORCH_CUDA_ARCH_LIST") == v.arch_list


# --- pyproject.toml and the environment files -----------------------------------------------

def test_pyproject_agrees():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["version"] == V.PACKAGE_VERSION
    floor = min((v for var in V.VARIANTS for v in var.pythons), key=lambda s: tuple(map(int, s.split("."))))
    assert project["requires-python"] == f">={floor}"
    import detectron2

    assert detectron2.__version__ == V.PACKAGE_VERSION
    for meta in RENDERED.values():
        run = meta["requirements"]["run"]
        declared = set()
        for dep in project["dependencies"]:
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", dep).groups()
            conda = V.CONDA_NAMES.get(name, name.lower())
            declared.add(conda)
            got = _spec(run, conda)
            assert got is not None, f"pyproject dependency {name} missing from meta.yaml run"
            if spec:
                assert got == f"{conda} {spec}", f"{name}{spec} in pyproject, {got!r} in meta.yaml"
        stack = {"python", "pytorch", "pytorch-cuda", "pytorch-mutex", "__cuda", "cuda-version", "cuda-arch",
                 "__cuda_arch", "mkl"}
        extra = set(_names(run)) - declared - stack
        assert extra == set(V.CONDA_EXTRA_RUN)


def _env(rel):
    return yaml.safe_load(_read(rel))


@pytest.mark.parametrize("variant", V.VARIANTS, ids=lambda v: v.name)
def test_env_files(variant):
    rel = "environment.yml" if variant.name == V.DEFAULT_VARIANT else f"envs/{variant.name}.yml"
    env = _env(rel)
    assert env["name"] == "detectron2"
    assert env["channels"] == [V.CHANNEL, *variant.channels, "nodefaults"]
    deps = env["dependencies"]
    assert f"pytorch={variant.pytorch}={variant.pytorch_build}" in deps
    assert f"torchvision={variant.torchvision}" in deps
    assert f"{V.CHANNEL}::detectron2={V.PACKAGE_VERSION}={variant.build_prefix}*" in deps
    if variant.stack == "pytorch":
        assert (f"pytorch-cuda={variant.cuda}" if variant.is_cuda else "cpuonly") in deps


def test_anchor_environment_pins():
    deps = _env("environment.yml")["dependencies"]
    assert {"pytorch=2.0.1=*cuda11.7*", "pytorch-cuda=11.7", "torchvision=0.15.2"} <= set(deps)
    assert _env("environment.yml")["channels"][:4] == ["detectron2-neo", "pytorch", "nvidia", "conda-forge"]


def test_every_variant_has_an_env_file_and_no_stray_ones():
    expected = {f"{v.name}.yml" for v in V.VARIANTS if v.name != V.DEFAULT_VARIANT}
    assert set(os.listdir(os.path.join(ROOT, "envs"))) == expected


def test_workflow_matrix_is_the_variant_table():
    flow = yaml.safe_load(_read(".github/workflows/conda.yml"))
    build = flow["jobs"]["build"]
    include = build["strategy"]["matrix"]["include"]
    got = sorted((i["variant"], i["platform"], str(i["python"])) for i in include)
    assert got == sorted((v.name, p, py) for v in V.VARIANTS for p in v.platforms for py in v.pythons)
    for item in include:
        v = V.get_variant(item["variant"])
        assert item["cuda"] == (v.cuda or "none") and item["cuda_arch"] == (v.cuda_arch_min or "")


def test_one_job_config_holds_every_build_of_its_variant():
    cfg = yaml.safe_load(distro.single_row_config("cu117", "3.11"))
    assert cfg["d2_arch_gate"] == ["yes", "no"] and cfg["target_platform"] == ["linux-64", "linux-64"]
    cfg = yaml.safe_load(distro.single_row_config("cu129", "3.12", "linux-aarch64"))
    assert cfg["target_platform"] == ["linux-aarch64"] and "zip_keys" not in cfg
    with pytest.raises(SystemExit, match="no variant row"):
        distro.single_row_config("cu117", "3.13")


# --- rendering without variant values, as conda-forge's linter does --------------------------

def _render_without_variants(text):
    """Render Jinja as the linter does: every variant variable unknown, rendering as its own
    name; an attribute of it is a string (so `x.split(...)` fails: a str is not callable);
    a filter over it fails."""
    import jinja2

    class LinterUndefined(jinja2.Undefined):
        def __str__(self):
            return self._undefined_name or ""

        def __getattr__(self, attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return f"{self._undefined_name}.{attr}"

    env = jinja2.Environment(undefined=LinterUndefined)

    def strict(filter_fn):
        def wrapped(*args, **kwargs):
            value = args[1] if args and isinstance(args[0], (jinja2.runtime.Context, jinja2.Environment)) else args[0]
            if isinstance(value, jinja2.Undefined):
                raise jinja2.UndefinedError(f"filter over the undefined {value._undefined_name!r}")
            return filter_fn(*args, **kwargs)
        for attr in ("jinja_pass_arg",):
            if hasattr(filter_fn, attr):
                setattr(wrapped, attr, getattr(filter_fn, attr))
        return wrapped

    env.filters = {k: strict(f) for k, f in env.filters.items()}
    # Only what the linter provides (functions); every variant variable stays unknown.
    return env.from_string(text).render(compiler=lambda lang: f"{lang}-compiler",
                                        stdlib=lambda lang: f"{lang}-stdlib")


def test_meta_yaml_renders_without_variant_values():
    rendered = _render_without_variants(_read("recipe/meta.yaml"))
    meta = yaml.safe_load(rendered)
    assert meta["package"]["name"] == "detectron2" and meta["build"]["number"] == "d2_build_number"
    assert meta["about"]["license"] == "Apache-2.0" and meta["test"]["imports"]


@pytest.mark.parametrize("snippet", ['{% set m = cuda_compiler_version.split(".")[0] %}',
                                     "number: {{ 0 + d2_priority | int }}"])
def test_linter_render_catches_what_crashed_conda_smithy(snippet):
    with pytest.raises(Exception):
        _render_without_variants(snippet)


def test_readme_variant_table_is_variants_py():
    text = _read("README.md")
    section = text[text.index("### Variants"):text.index("**When the solve fails.**")]
    rows = {line.split("|")[1].strip().split()[0].strip("`"): line for line in section.splitlines()
            if line.startswith("| `")}
    assert set(rows) == {v.name for v in V.VARIANTS}
    for v in V.VARIANTS:
        row = rows[v.name]
        if v.is_cuda:
            assert f"`{v.cuda_arch_spec.replace('|', chr(92) + '|')}`" in row, v.name
            assert v.arch_list in row and v.cuda in row
        assert ", ".join(v.platforms) in row and v.pytorch in row
        assert all(str(b.number) in row for b in v.builds()), v.name
