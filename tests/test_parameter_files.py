"""Every parameter file means the same to plain papermill as to the runner.

``papermill -f FILE`` reads YAML 1.1 with PyYAML's safe loader, where ``1.0e8`` is the *string* ``"1.0e8"`` (a float
needs a sign in the exponent, ``1.0e+8``); the runner's own loader (:mod:`lib.runtime.params`) reads it as a number.
A file that the two read differently runs one way under ``studies run`` and another (or not at all) under the
README's papermill command, so every value, its type included, is compared here: the study parameters, the
``_profile`` block and the ``_sweep`` block, and the values the runner hands to the notebook after validating them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from papermill.iorw import read_yaml_file

from lib.runtime.params import PROFILE_KEY, SWEEP_KEY, load_parameter_file, load_sweep_block
from lib.runtime.run import get_study, resolve_parameters

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "parameters").rglob("*.yaml"))


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ in value or type (``bool`` is not ``int``, ``int`` is not ``float``)."""
    if type(a) is not type(b):
        return [f"{where or '<file>'}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"]
    if isinstance(a, dict):
        out = [f"{where}.{k}: only in one of them" for k in sorted(set(a) ^ set(b), key=str)]
        for k in a.keys() & b.keys():
            out += _differences(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} elements"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _plain(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def test_there_are_parameter_files():
    assert len(FILES) >= 12
    assert {p.parent.name for p in FILES} == {"nuclei", "perfusion", "pgnaa", "radiative"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO / "parameters")))
def test_papermill_reads_what_safe_load_reads(path):
    """papermill's own reader (dates kept as strings) agrees with ``yaml.safe_load`` on every file."""
    assert _differences(read_yaml_file(str(path)), _plain(path)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO / "parameters")))
def test_runner_reads_what_papermill_reads(path):
    plain = _plain(path)
    values, info = load_parameter_file(path)
    expected = {k: v for k, v in plain.items() if k not in (PROFILE_KEY, SWEEP_KEY)}
    assert _differences(values, expected) == [], f"{path}: the runner and papermill read different values"

    profile = plain.get(PROFILE_KEY) or {}
    assert set(profile) <= {f.name for f in dataclasses.fields(info)}
    got = {k: getattr(info, k) for k in profile}
    assert _differences(got, profile) == [], f"{path}: {PROFILE_KEY} differs"

    sweep = load_sweep_block(path)
    if SWEEP_KEY in plain:
        assert sweep is not None
        assert _differences(sweep["grid"], plain[SWEEP_KEY]["grid"]) == [], f"{path}: {SWEEP_KEY}.grid differs"
        assert _differences(sweep["metrics"], plain[SWEEP_KEY].get("metrics", [])) == []
    else:
        assert sweep is None


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO / "parameters")))
def test_notebook_gets_the_same_values_either_way(path):
    """What the runner injects after validation (ints widened to float for a float) is what papermill injects."""
    plain = _plain(path)
    study = get_study(path.parent.name, REPO)
    params, _, _, _ = resolve_parameters(study, path.stem)
    injected = {k: params[k] for k in plain if k not in (PROFILE_KEY, SWEEP_KEY)}
    expected = {k: v for k, v in plain.items() if k not in (PROFILE_KEY, SWEEP_KEY)}
    assert _differences(injected, expected) == [], (
        f"{path}: write each value as the parameters cell declares it (a float as 1.0, not 1; 1.0e+8, not 1.0e8)"
    )


def test_differences_sees_types():
    """The comparison itself: a YAML 1.1 string '1.0e8', an int for a float and a bool for an int all differ."""
    assert _differences({"a": "1.0e8"}, {"a": 1.0e8})
    assert _differences({"a": [1]}, {"a": [1.0]})
    assert _differences({"a": True}, {"a": 1})
    assert _differences({"a": {"b": 1}}, {"a": {"c": 1}})
    assert yaml.safe_load("x: 1.0e8")["x"] == "1.0e8"  # why the files write 1.0e+8
    assert _differences({"a": [1.0e8, None]}, {"a": [1.0e8, None]}) == []


# --- every size, count and rate of the four chapters declares its limits -------------------------------------------

#: Numeric parameters that may take any value of their type, and why (none today: even ``seed`` is ``min 0``).
UNCONSTRAINED: dict[tuple[str, str], str] = {}
STUDIES = ("nuclei", "perfusion", "pgnaa", "radiative")


def _numeric(type_text: str) -> bool:
    """``int``, ``float``, their lists and ``X | None`` (``bool`` is its own type)."""
    return bool({"int", "float"} & set(type_text.replace("[", " ").replace("]", " ").replace("|", " ").split()))


@pytest.mark.parametrize("name", STUDIES)
def test_every_numeric_parameter_declares_a_constraint(name):
    from lib.runtime.run import chapter_parameters

    specs = chapter_parameters(get_study(name, REPO))
    numeric = {k: s for k, s in specs.items() if _numeric(s.type_text)}
    assert len(numeric) >= 10
    missing = sorted(k for k, s in numeric.items() if not s.constraints and (name, k) not in UNCONSTRAINED)
    assert missing == [], (
        f"book/{name}/{name}.md: parameters {missing} declare no constraint; add `# check: ...` to their line in "
        "the parameters cell (see parameters/README.md), or list them in UNCONSTRAINED with the reason"
    )
    stale = sorted(k for (study, k) in UNCONSTRAINED if study == name and (k not in numeric or numeric[k].constraints))
    assert stale == [], f"UNCONSTRAINED lists {stale}, which are constrained or not numeric parameters of {name}"


def test_numeric_detection():
    assert _numeric("int") and _numeric("float") and _numeric("list[int]") and _numeric("int | None")
    assert not _numeric("bool") and not _numeric("str") and not _numeric("list[str]") and not _numeric("str | None")


def test_a_zero_test_set_is_refused_before_anything_runs(tmp_path, capsys):
    """``studies run pgnaa --set n_test_per_class=0`` ran 36 s, then failed in ``torch.cat`` naming no parameter."""
    from lib.cli import main
    from lib.runtime.params import ParameterError

    study = get_study("pgnaa", REPO)
    with pytest.raises(ParameterError, match=r"'n_test_per_class' must satisfy `min 1`, got 0"):
        resolve_parameters(study, "ci", overrides={"n_test_per_class": 0})
    out = tmp_path / "run"
    assert main(["run", "pgnaa", "--profile", "ci", "--set", "n_test_per_class=0", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "n_test_per_class" in err and "min 1" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".run*")), "something ran"
