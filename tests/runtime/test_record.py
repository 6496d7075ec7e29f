"""The run record (lib.runtime.record): one writer, one reader, the key of the inputs and the one reuse rule."""

from __future__ import annotations

import hashlib
import json

import pytest

from lib.runtime.record import (
    DATA_SOURCES_KEY,
    RecordError,
    RunRecord,
    changed_inputs,
    data_source_text,
    key_of,
    reuse_problem,
    reuse_state,
)

INPUTS = {"book/demo/demo.md": "a" * 64, "lib/core/report.py": "b" * 64, "<parameter file>": "c" * 64}


def _record(**kw) -> RunRecord:
    base = dict(study="demo", profile="ci", status="ok", run_key=key_of(INPUTS), inputs=dict(INPUTS),
                parameters={"n": 10}, data_sources={"nist-pgaa": "real"}, threads={"OMP_NUM_THREADS": "1"},
                started="2026-12-07T10:00:00+00:00", ended="2026-12-07T10:01:00+00:00", duration_s=60.5,
                metrics={"total": 10.0, "count": 3},
                environment={"git": {"commit": "c0ffee" * 6, "dirty": False}, "device": {"device": "cpu"}, "seed": 0})
    base.update(kw)
    return RunRecord(**base)


def test_write_then_read_gives_the_same_record(tmp_path):
    rec = _record()
    rec.write(tmp_path)
    assert RunRecord.read(tmp_path) == rec
    prov = json.loads((tmp_path / "provenance.json").read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the files keep the layout every reader (and a person) expects
    assert prov["status"] == "ok" and prov["run_key"] == key_of(INPUTS) and prov["git"]["commit"].startswith("c0ffee")
    assert "failed_cell" not in prov and "metrics" not in prov
    assert metrics == {"total": 10.0, "count": 3, DATA_SOURCES_KEY: {"nist-pgaa": "real"}}


def test_read_of_a_folder_without_a_record_is_none_and_a_broken_one_is_named(tmp_path):
    assert RunRecord.read(tmp_path) is None
    (tmp_path / "provenance.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"provenance.json .*delete .* and run the study again"):
        RunRecord.read(tmp_path)
    (tmp_path / "provenance.json").write_text(json.dumps({"study": "demo"}))
    with pytest.raises(RecordError, match="not a run record"):
        RunRecord.read(tmp_path)


def test_a_status_outside_the_list_is_refused(tmp_path):
    with pytest.raises(ValueError, match="status must be one of"):
        _record(status="done").write(tmp_path)


def test_key_of_is_the_sha256_of_the_sorted_digests_and_sees_every_change():
    text = json.dumps(dict(sorted(INPUTS.items())), sort_keys=True, separators=(",", ":"))
    assert key_of(INPUTS) == hashlib.sha256(text.encode()).hexdigest()
    assert key_of(dict(reversed(list(INPUTS.items())))) == key_of(INPUTS)
    changed = {**INPUTS, "lib/core/report.py": "d" * 64}
    added = {**INPUTS, "lib/core/new.py": "e" * 64}
    removed = {k: v for k, v in INPUTS.items() if k != "lib/core/report.py"}
    assert len({key_of(INPUTS), key_of(changed), key_of(added), key_of(removed)}) == 4


def test_changed_inputs_names_what_changed():
    now = {**INPUTS, "lib/core/report.py": "d" * 64, "lib/core/new.py": "e" * 64}
    del now["<parameter file>"]
    assert changed_inputs(INPUTS, now) == ["<parameter file> (removed)", "lib/core/new.py (new)",
                                           "lib/core/report.py"]
    assert changed_inputs(INPUTS, INPUTS) == []


def test_the_reuse_rule():
    key = key_of(INPUTS)
    assert reuse_problem(_record(), key) is None
    assert reuse_problem(None, key).startswith("missing")
    assert reuse_problem(_record(status="failed", failed_cell="code cell 3"), key) == "failed in code cell 3"
    assert reuse_problem(_record(status="interrupted"), key) == "interrupted"
    # a --set run never stands for its profile, and a sweep point only for its own overrides
    assert reuse_problem(_record(overrides={"n": 3}), key).startswith("stale: it ran with overrides")
    assert reuse_problem(_record(overrides={"n": 3}), key, overrides={"n": 3}) is None
    assert reuse_problem(_record(overrides={"n": 3}), key, overrides={"n": 4}) is not None
    now = {**INPUTS, "lib/core/report.py": "d" * 64}
    assert reuse_problem(_record(), key_of(now), current_inputs=now) == "stale: lib/core/report.py changed"
    assert reuse_problem(_record(run_key=None, inputs={}), key).startswith("stale: recorded before")


def test_data_source_lines():
    assert _record().data_source == "nist-pgaa: real"
    assert _record(data_sources={}).data_source == "no dataset read"
    assert _record(data_sources=None).data_source == "not recorded"
    assert data_source_text({"b": "synthetic (no mirror)", "a": "real"}) == "a: real; b: synthetic (no mirror)"


def test_reuse_state_names_the_state_and_the_reason():
    key = key_of(INPUTS)
    assert reuse_state(_record(), key) == ("current", "")
    assert reuse_state(None, key) == ("missing", "no run yet")
    timed_out = _record(status="timeout", failed_cell="code cell 4")
    assert reuse_state(timed_out, key) == ("failed", "timeout in code cell 4")
    assert reuse_state(_record(status="interrupted"), key) == ("interrupted", "interrupted")
    now = {**INPUTS, "<parameter file>": "f" * 64}
    assert reuse_state(_record(), key_of(now), current_inputs=now) == ("stale", "<parameter file> changed")
