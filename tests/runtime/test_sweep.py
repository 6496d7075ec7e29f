"""Sweeps declared as data (lib.runtime.sweep, `_sweep` of lib.runtime.params)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.cli import main
from lib.runtime.params import ParameterError, ProfileInfo, load_parameter_file, load_sweep_block, parse_override
from lib.runtime.run import get_study
from lib.runtime.sweep import (
    expand_sweep,
    format_override,
    job_resources,
    list_sweeps,
    parse_runtime,
    point_id,
    run_profiles,
)

SWEEP = """_profile: {description: demo sweep, expected_runtime: "5 s", device: cpu}
_sweep:
  grid: {scale: [0.5, 2], n: [3, 10]}
  metrics: [total]
profile: sweep_scale
n: 4
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def swept(minibook: Path) -> Path:
    _write(minibook / "parameters" / "demo" / "sweep_scale.yaml", SWEEP)
    return minibook


# -- the _sweep block in parameter files ---------------------------------------------------------------------------


def test_single_run_ignores_sweep_block(swept):
    values, info = load_parameter_file(swept / "parameters" / "demo" / "sweep_scale.yaml")
    assert values == {"profile": "sweep_scale", "n": 4}
    assert info.expected_runtime == "5 s"


def test_sweep_block_structure(swept):
    block = load_sweep_block(swept / "parameters" / "demo" / "sweep_scale.yaml")
    assert block == {"grid": {"scale": [0.5, 2], "n": [3, 10]}, "metrics": ["total"]}
    assert load_sweep_block(swept / "parameters" / "demo" / "ci.yaml") is None


@pytest.mark.parametrize(
    "block, message",
    [
        ("_sweep: [1, 2]", "must be a mapping with a 'grid'"),
        ("_sweep: {grid: {n: 3}}", "must be a non-empty list"),
        ("_sweep: {grid: {}}", "non-empty mapping"),
        ("_sweep: {grid: {n: [1]}, plot: x}", "unknown field"),
        ("_sweep: {grid: {n: [1]}, metrics: total}", "list of metric names"),
    ],
)
def test_bad_sweep_block_is_rejected(tmp_path, block, message):
    path = _write(tmp_path / "s.yaml", block + "\n")
    with pytest.raises(ParameterError, match=message):
        load_parameter_file(path)


def test_profile_mem_mb(tmp_path):
    path = _write(tmp_path / "p.yaml", "_profile: {device: gpu, expected_runtime: '2 h', mem_mb: 16000}\n")
    assert load_parameter_file(path)[1].mem_mb == 16000
    with pytest.raises(ParameterError, match="mem_mb must be a int"):
        load_parameter_file(_write(tmp_path / "q.yaml", "_profile: {mem_mb: lots}\n"))


# -- expansion -----------------------------------------------------------------------------------------------------


def test_expand_is_cartesian_validated_and_ordered(swept):
    sw = expand_sweep(get_study("demo", swept), swept / "parameters" / "demo" / "sweep_scale.yaml")
    assert sw.name == "sweep_scale" and sw.metrics == ["total"]
    assert [p.id for p in sw.points] == ["scale-0.5_n-3", "scale-0.5_n-10", "scale-2.0_n-3", "scale-2.0_n-10"]
    # the int 2 is widened to the declared float, as a single run would do
    assert sw.points[2].overrides == {"scale": 2.0, "n": 3}
    assert isinstance(sw.points[2].overrides["scale"], float)
    assert sw.points[2].set_args() == ["scale=2.0", "n=3"]


@pytest.mark.parametrize(
    "grid, message",
    [
        ("{epoch: [1, 2]}", "unknown parameter 'epoch'"),
        ("{n: [1, two]}", r"grid\.n\[1\]: parameter 'n' expects int"),
        ("{n: [1, 1]}", "twice"),
        ("{profile: [a, b]}", "cannot vary 'profile'"),
    ],
)
def test_bad_grid_is_rejected_before_running(minibook, grid, message):
    path = _write(minibook / "parameters" / "demo" / "sweep_bad.yaml", f"_sweep: {{grid: {grid}}}\n")
    with pytest.raises(ParameterError, match=message):
        expand_sweep(get_study("demo", minibook), path)


def _grid(**lengths: int) -> str:
    values = {"seed": lambda i: i, "n": lambda i: i + 1, "scale": lambda i: 0.5 * (i + 1), "sleep_s": lambda i: 0.1 * i}
    lists = [f"{k}: [{', '.join(repr(values[k](i)) for i in range(size))}]" for k, size in lengths.items()]
    return "_sweep: {grid: {" + ", ".join(lists) + "}}\n"


def test_sweep_grid_size_is_capped_before_expanding(minibook, monkeypatch):
    import lib.runtime.sweep as sweep_module
    from lib.runtime.params import MAX_SWEEP_POINTS

    assert MAX_SWEEP_POINTS == 1000
    study = get_study("demo", minibook)
    path = _write(minibook / "parameters" / "demo" / "sweep_big.yaml", _grid(seed=11, n=10, scale=10))
    expected = (f"parameter file {path}: _sweep.grid has 1100 points (11 seed x 10 n x 10 scale), more than the "
                "1000 a sweep may have (each point is one run); thin the lists or split the sweep")
    for read in (lambda: expand_sweep(study, path), lambda: load_parameter_file(path), lambda: list_sweeps(minibook)):
        with pytest.raises(ParameterError) as err:
            read()
        assert expected in str(err.value)

    def no_expansion(overrides):
        raise AssertionError("the grid was expanded before its size was checked")

    monkeypatch.setattr(sweep_module, "point_id", no_expansion)
    _write(path, _grid(seed=10, n=10, scale=10, sleep_s=10))  # a few hundred bytes, 10**4 points
    with pytest.raises(ParameterError, match=r"grid has 10000 points \(10 seed x 10 n x 10 scale x 10 sleep_s\)"):
        expand_sweep(study, path)
    monkeypatch.undo()
    _write(path, _grid(seed=10, n=10, scale=10))  # the cap itself is allowed
    assert len(expand_sweep(study, path).points) == 1000


def test_sweep_files_are_not_run_profiles(swept):
    st = get_study("demo", swept)
    assert "sweep_scale" in st.profiles
    assert run_profiles(st) == ["ci", "lab"]
    assert [(s.study, s.name, len(s.points)) for s in list_sweeps(swept)] == [("demo", "sweep_scale", 4)]
    assert list_sweeps(swept, studies=["other"]) == []


def test_point_ids_are_stable_safe_and_distinct():
    assert point_id({"epochs": 2, "lr": 0.001}) == "epochs-2_lr-0.001"
    assert point_id({"k": [100, 1000], "flag": True, "x": None}) == "k-100+1000_flag-true_x-none"
    assert point_id({"shift": -1}) == "shift-m1"
    odd = [point_id({"model": m}) for m in ("a b", "a/b", "a_b?", "a-b")]
    assert len(set(odd)) == 4
    long = point_id({"channels": list(range(100))})
    ids = odd + [long, point_id({"lr": 1e-5}), point_id({"name": "small_cnn+rsm3"})]
    for ident in ids:
        assert set(ident) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
        assert len(ident) <= 96
    assert point_id({"model": "a b"}) == point_id({"model": "a b"})  # stable across calls
    assert point_id({"model": "a b"}).startswith("model-a-b-")  # lossy spelling gets a hash suffix


@pytest.mark.parametrize("value", [3, 0.001, 1e-5, 100.0, True, None, "lab", "small_cnn+rsm3", "yes", "a b",
                                   "1e3", [100, 1000], ["a", "b"], [0.0, 0.01]])
def test_overrides_round_trip_through_the_runner_parser(value):
    key, parsed = parse_override(f"x={format_override(value)}")
    assert key == "x" and parsed == value and type(parsed) is type(value)


# -- resources -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, minutes", [("90 s", 1.5), ("8 min", 8), ("3 h", 180), ("1 h 30 min", 90),
                                           ("60 s", 1), ("unknown", None), ("", None)])
def test_parse_runtime(text, minutes):
    assert parse_runtime(text) == minutes


def test_job_resources_from_profile():
    assert job_resources(ProfileInfo(expected_runtime="60 s", device="cpu")) == {"gpu": 0, "runtime": 10}
    res = job_resources(ProfileInfo(expected_runtime="3 h", device="gpu", mem_mb=32000))
    assert res == {"gpu": 1, "runtime": 540, "mem_mb": 32000}
    assert job_resources(ProfileInfo())["runtime"] == 1440  # unknown run time: a day


def test_cli_points(swept, monkeypatch, capsys):
    monkeypatch.setenv("STUDIES_ROOT", str(swept))
    assert main(["workflow", "points", "demo", "sweep_scale"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["scale-0.5_n-3", "--set", "scale=0.5", "--set", "n=3"]
    assert len(out) == 4
    assert main(["workflow", "points", "demo", "nope"]) == 2
