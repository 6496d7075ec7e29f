"""The runner against the fixture chapter in tests/fixtures/minibook."""

import json
import os

import nbformat
import pytest

from lib.cli import main
from lib.core.repro import sha256_file
from lib.runtime.params import ParameterError
from lib.runtime.run import (
    StudyError,
    StudyExecutionError,
    collect_metrics,
    get_study,
    list_studies,
    run_key,
    run_study,
    thread_environment,
)


@pytest.fixture
def env_root(minibook, monkeypatch):
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    return minibook


def test_list_studies(minibook):
    studies = list_studies(minibook)
    assert [s.name for s in studies] == ["demo"]
    assert studies[0].profiles == ["ci", "lab"]
    assert studies[0].profile_info("lab").expected_runtime == "10 s"


def test_run_writes_notebook_metrics_provenance_and_figures(minibook):
    res = run_study("demo", "lab", out=minibook / "out", root=minibook, progress=False)
    out = minibook / "out"
    assert res.metrics["total"] == pytest.approx(42.0)  # n=21, scale=2 from lab.yaml
    assert json.loads((out / "metrics.json").read_text()) == res.metrics  # no dataset read: no _data_sources
    assert set(res.metrics) == {"total", "n_labels", "draw"}
    assert (out / "figures" / "demo_line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "ok"
    assert prov["study"] == "demo" and prov["profile"] == "lab" and prov["seed"] is None  # lab.yaml sets no seed
    assert prov["params_sha256"] == sha256_file(minibook / "parameters/demo/lab.yaml")
    assert prov["parameters"] == {"profile": "lab", "n": 21, "scale": 2.0}
    for pkg in ("python", "torch", "numpy", "scipy", "SimpleITK", "pandas", "seaborn", "jupyter-book"):
        assert pkg in prov["versions"]
    assert prov["versions"]["torch"]
    assert {"commit", "dirty"} <= set(prov["git"])
    assert {"device", "device_name", "cuda_version"} <= set(prov["device"])
    assert prov["started"] <= prov["ended"] and prov["duration_s"] > 0

    nb = nbformat.read(out / "demo.ipynb", as_version=4)
    first = nb.cells[0]
    assert "provenance" in first.metadata.tags and "remove-input" in first.metadata.tags
    assert "<details>" in first.outputs[0]["data"]["text/html"]
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_overrides_and_seed_are_applied(minibook):
    res = run_study("demo", "ci", overrides={"seed": 7, "scale": 3}, out=minibook / "o", root=minibook, progress=False)
    assert res.metrics["total"] == pytest.approx(30.0)
    res2 = run_study("demo", "ci", overrides={"seed": 7}, out=minibook / "o2", root=minibook, progress=False)
    assert res2.metrics["draw"] == res.metrics["draw"]  # same seed, same draw
    assert res.provenance["seed"] == 7


def test_failing_cell_names_cell_and_keeps_notebook(minibook):
    with pytest.raises(StudyExecutionError) as err:
        run_study("demo", "ci", overrides={"fail": True}, out=minibook / "f", root=minibook, progress=False)
    msg = str(err.value)
    assert "study 'demo' (profile 'ci') failed in code cell 3" in msg
    assert "book/demo/demo.md line" in msg
    assert "ValueError: deliberate failure" in msg
    assert err.value.notebook.is_file()
    prov = json.loads((minibook / "f" / "provenance.json").read_text())
    assert prov["status"] == "failed"
    # metrics recorded before the failure are still collected
    assert json.loads((minibook / "f" / "metrics.json").read_text())["total"] == 10.0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"overrides": {"nn": 3}}, ParameterError, "unknown parameter 'nn'.*Valid parameters: dataset, device, fail"),
        ({"overrides": {"n": "ten"}}, ParameterError, "parameter 'n' expects int, got str 'ten'"),
        ({"profile": "huge"}, StudyError, "no profile 'huge'; available profiles: ci, lab"),
    ],
)
def test_errors_before_execution(minibook, kwargs, exc, match):
    args = {"profile": "ci", **kwargs}
    with pytest.raises(exc, match=match):
        run_study("demo", args.pop("profile"), out=minibook / "x", root=minibook, progress=False, **args)
    assert not (minibook / "x" / "demo.ipynb").exists()  # nothing reached papermill


def test_unknown_study_lists_studies(minibook):
    with pytest.raises(StudyError, match="unknown study 'dmo'; available studies: demo"):
        get_study("dmo", minibook)


def test_cli_exit_codes_and_messages(env_root, capsys, tmp_path):
    assert main(["run", "demo", "--profile", "ci", "--set", "bogus=1", "--quiet"]) == 2
    assert "unknown parameter 'bogus'" in capsys.readouterr().err
    assert main(["run", "demo", "--params", str(tmp_path / "missing.yaml"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("n: 1.5\n")
    assert main(["run", "demo", "--params", str(bad), "--quiet"]) == 2
    assert "parameter 'n' expects int, got float 1.5" in capsys.readouterr().err
    assert main(["run", "nope"]) == 2
    assert "available studies: demo" in capsys.readouterr().err
    assert main(["run", "demo", "--profile", "ci", "--set", "fail=true", "--quiet",
                 "--out", str(tmp_path / "f")]) == 1
    assert "failed in code cell 3" in capsys.readouterr().err
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(tmp_path / "ok")]) == 0
    assert "total = 10.0" in capsys.readouterr().out


def test_cli_list_and_params(env_root, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "lab" in out and "10 s" in out and "cpu" in out
    assert main(["params", "demo"]) == 0
    out = capsys.readouterr().out
    assert "labels" in out and "list[str]" in out and "str | None" in out


def test_collect_metrics_ignores_non_numbers():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    prefix = "application/papermill.record/"
    cell.outputs = [
        nbformat.v4.new_output("display_data", {prefix + "text/plain": "0.5"}, metadata={"scrapbook": {"name": "a"}}),
        nbformat.v4.new_output("display_data", {prefix + "text/plain": "'x'"}, metadata={"scrapbook": {"name": "b"}}),
        nbformat.v4.new_output("display_data", {"text/plain": "3"}, metadata={}),
    ]
    nb.cells.append(cell)
    assert collect_metrics(nb) == {"a": 0.5}


def test_numba_in_the_kernel_keeps_to_omp_num_threads(minibook, monkeypatch):
    """Two one-thread runs side by side must not each start a Numba thread per core (12x slower on 2 cores)."""
    pytest.importorskip("numba")
    chapter = minibook / "book" / "demo" / "demo.md"
    chapter.write_text(chapter.read_text() + "\n```{code-cell} ipython3\nimport numba\n"
                       "report.metric('numba_threads', numba.get_num_threads())\n```\n")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    res = run_study("demo", "ci", out=minibook / "one", root=minibook, progress=False)
    assert res.metrics["numba_threads"] == 1
    assert res.provenance["threads"] == {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    assert "NUMBA_NUM_THREADS" not in os.environ  # the runner's own environment is restored
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")  # an explicit setting wins
    res = run_study("demo", "ci", out=minibook / "two", root=minibook, progress=False)
    assert res.metrics["numba_threads"] == 2


def test_thread_environment():
    assert thread_environment({"OMP_NUM_THREADS": "3"}) == {"NUMBA_NUM_THREADS": "3"}
    assert thread_environment({"OMP_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "1"}) == {}
    assert thread_environment({}) == {} and thread_environment({"OMP_NUM_THREADS": "0"}) == {}
    assert thread_environment({"OMP_NUM_THREADS": "4,2"}) == {}  # a nested OpenMP list: left alone


def test_run_key_follows_the_overrides_and_the_parameter_file(minibook):
    st = get_study("demo", minibook)
    path = st.parameter_dir / "ci.yaml"
    plain = run_key(st, path)
    assert run_key(st, path, {}) == plain
    one = run_key(st, path, {"n": 3, "scale": 2.0})
    assert run_key(st, path, {"scale": 2.0, "n": 3}) == one  # the order of --set does not matter
    assert len({plain, one, run_key(st, path, {"n": 4, "scale": 2.0}), run_key(st, path, {"n": 3})}) == 4
    path.write_text(path.read_text().replace("n: 10", "n: 11"))
    assert run_key(st, path) != plain
