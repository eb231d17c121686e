"""recipe/v1/recipe.yaml (rattler-build v1) builds the same packages as recipe/meta.yaml.

py-rattler-build (the real rattler-build library) renders recipe.yaml over
conda_build_config.yaml; scripts/distro.py renders meta.yaml (conda-build's semantics). For
every variant row the two must give the same build number, build string (up to the hash),
requirements (every spec parsed by rattler's strict MatchSpec on the v1 side, which is what
rejects `1.0 cuda` and dotted build-string globs), tests and about section.
"""
import os
import re
import sys

import pytest
import rattler
import yaml
from rattler_build import JinjaConfig, PlatformConfig, RenderConfig, VariantConfig
from rattler_build.stage0 import Stage0Recipe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import distro  # noqa: E402
from distro import V  # noqa: E402

KEY = ("d2_variant", "target_platform", "python", "d2_arch_gate")


def _render_v1():
    platform = PlatformConfig(target_platform="linux-64")
    variants = VariantConfig.from_conda_build_config(distro.CONFIG, JinjaConfig(platform=platform))
    recipe = Stage0Recipe.from_file(os.path.join(ROOT, "recipe", "v1", "recipe.yaml"))
    return {tuple(r.variant[k] for k in KEY): r for r in recipe.render(variants, RenderConfig(platform=platform))}


V1 = _render_v1()
META = {tuple(row[k] for k in KEY): distro.render(row) for row in distro.config_rows()}


def _conda_build_spec(spec: str) -> str:
    """conda-build's reading of a meta.yaml spec: a bare version without operator or star
    means that version and its sub-versions (`gcc_linux-64 11` is `11.*`)."""
    parts = " ".join(str(spec).split()).split(" ")
    if len(parts) >= 2 and re.fullmatch(r"[0-9][0-9A-Za-z_.]*", parts[1]) and not parts[1].endswith("*"):
        parts[1] += ".*"
    return " ".join(parts)


def _norm(spec: str, strict: bool) -> str:
    """One spelling per meaning: rattler's own rendering of the parsed spec."""
    # rattler-build parsed the v1 spec strictly when it rendered; its output spells a bracketed
    # build glob in the loose form again, so both sides are read back leniently here.
    text = " ".join(str(spec).split()) if strict else _conda_build_spec(spec)
    return str(rattler.MatchSpec(text, strict=False))


def _section(reqs: dict, name: str, strict: bool):
    specs = [_norm(s, strict) for s in (reqs.get(name) or [])]
    if name == "run":
        specs = ["python" if s.startswith("python ") else s for s in specs]  # conda-build's pin_run_as_build
    return specs


def test_both_recipes_render_every_row():
    assert set(V1) == set(META) and len(META) == len(distro.config_rows())


@pytest.mark.parametrize("key", sorted(META), ids=lambda k: "-".join(k))
def test_same_package_per_variant(key):
    meta, v1 = META[key], V1[key].recipe.to_dict()
    assert v1["package"] == {"name": "detectron2", "version": meta["package"]["version"]}
    assert v1["build"]["number"] == meta["build"]["number"]
    strip_hash = lambda s: re.sub(r"h[0-9a-f]{7}_", "h_", s)  # noqa: E731 (each tool hashes its own way)
    assert strip_hash(v1["build"]["string"]) == strip_hash(meta["build"]["string"])
    m_reqs, r_reqs = meta["requirements"], v1["requirements"]
    for conda_name, v1_name in (("build", "build"), ("host", "host"), ("run", "run"),
                                ("run_constrained", "run_constraints")):
        assert _section(r_reqs, v1_name, strict=True) == _section(m_reqs, conda_name, strict=False), conda_name
    ignored = (r_reqs.get("ignore_run_exports") or {}).get("by_name") or []
    assert ignored == (meta["build"].get("ignore_run_exports") or [])


def test_tests_and_about_agree():
    key = next(k for k in META if k[0] == V.DEFAULT_VARIANT)
    meta, v1 = META[key], V1[key].recipe.to_dict()
    with open(os.path.join(ROOT, "recipe", "v1", "recipe.yaml")) as f:
        raw = yaml.safe_load(f)
    python_test = next(t["python"] for t in raw["tests"] if "python" in t)
    script_test = next(t for t in raw["tests"] if "script" in t)
    assert python_test["imports"] == meta["test"]["imports"] and python_test["pip_check"] is True
    commands = [c for c in meta["test"]["commands"] if c != "pip check"]
    assert script_test["script"][:len(commands)] == commands
    assert script_test["script"][-1] == "python recipe/run_test.py"
    assert script_test["files"]["source"] == ["recipe/run_test.py"]
    about = v1["about"]
    pairs = {"homepage": "home", "summary": "summary", "license": "license", "documentation": "doc_url",
             "repository": "dev_url"}
    for v1_field, conda_field in pairs.items():
        assert str(about[v1_field]).rstrip("/") == str(meta["about"][conda_field]).rstrip("/"), v1_field
    assert about["license_file"] in ("LICENSE", ["LICENSE"])
    assert about["description"].strip() == meta["about"]["description"].strip()


@pytest.mark.parametrize("strict, loose", [
    ("pytorch-mutex ==1.0 cuda", "pytorch-mutex 1.0 cuda"),
    ('pytorch ${{ pytorch }}.*[build="${{ pytorch_build }}"]', "pytorch ${{ pytorch }}.* ${{ pytorch_build }}"),
], ids=["exact-version", "dotted-build-glob"])
def test_rattler_build_rejects_the_meta_yaml_spelling(tmp_path, strict, loose):
    """Why recipe.yaml spells these specs differently from meta.yaml: rattler-build refuses
    the conda-build spelling (and the strict spelling renders, see the tests above)."""
    with open(os.path.join(ROOT, "recipe", "v1", "recipe.yaml")) as f:
        text = f.read()
    assert strict in text
    (tmp_path / "recipe.yaml").write_text(text.replace(strict, loose))
    platform = PlatformConfig(target_platform="linux-64")
    variants = VariantConfig.from_conda_build_config(distro.CONFIG, JinjaConfig(platform=platform))
    with pytest.raises(Exception, match="range specifier|build string"):
        Stage0Recipe.from_file(str(tmp_path / "recipe.yaml")).render(variants, RenderConfig(platform=platform))
