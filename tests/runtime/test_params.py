import textwrap

import pytest

from lib.runtime.params import ParameterError, load_parameter_file, parse_override, parse_parameters, validate

CELL = textwrap.dedent(
    """
    # a comment
    profile: str = "ci"
    seed: int = 0
    lr: float = 1e-3
    epochs = 3
    counts: list[int] = [10, 100]
    note: str | None = None
    flag: bool = False
    extra: dict = {}
    """
)


@pytest.fixture
def specs():
    return parse_parameters(CELL)


def test_parse_declares_every_name(specs):
    assert list(specs) == ["profile", "seed", "lr", "epochs", "counts", "note", "flag", "extra"]
    assert specs["lr"].default == 1e-3
    assert specs["epochs"].type_text == "int"  # from the literal
    assert specs["counts"].type_text == "list[int]"


def test_validate_coerces_and_accepts(specs):
    out = validate(specs, {"lr": 1, "counts": (1, 2), "note": "x", "flag": True})
    assert out == {"lr": 1.0, "counts": [1, 2], "note": "x", "flag": True}
    assert isinstance(out["lr"], float)
    assert validate(specs, {"note": None}) == {"note": None}


def test_unknown_key_lists_valid_keys(specs):
    with pytest.raises(ParameterError) as err:
        validate(specs, {"epocs": 3}, source="lab.yaml")
    msg = str(err.value)
    assert "unknown parameter 'epocs'" in msg
    assert "Did you mean 'epochs'" in msg
    assert "counts, epochs, extra, flag, lr, note, profile, seed" in msg
    assert "lab.yaml" in msg


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("seed", "3", "expects int, got str '3'"),
        ("seed", 2.5, "expects int, got float 2.5"),
        ("seed", True, "expects int, got bool True"),
        ("lr", "fast", "expects float, got str"),
        ("counts", [1, "x"], "element 1 is str 'x'"),
        ("flag", 1, "expects bool, got int 1"),
        ("note", 3, "expects str | None, got int 3"),
    ],
)
def test_wrong_type_names_key_expected_and_given(specs, key, value, expected):
    with pytest.raises(ParameterError, match=rf"parameter '{key}'"):
        validate(specs, {key: value})
    with pytest.raises(ParameterError) as err:
        validate(specs, {key: value})
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "cell",
    ["x = compute()", "x: int", "import os", "x: set = set()", "def f(): pass", "x: int = 'a'", "x = ("],
)
def test_bad_parameters_cells_are_rejected(cell):
    with pytest.raises(ParameterError):
        parse_parameters(cell)


def test_load_parameter_file(tmp_path):
    p = tmp_path / "lab.yaml"
    p.write_text("_profile: {description: d, expected_runtime: 2 min, device: cpu, cell_timeout: 60}\nseed: 1\n")
    values, info = load_parameter_file(p)
    assert values == {"seed": 1}
    assert (info.description, info.expected_runtime, info.device, info.cell_timeout) == ("d", "2 min", "cpu", 60)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("a: [1\n", "not valid YAML"),
        ("_profile: {device: tpu}\n", "device must be one of"),
        ("_profile: {colour: red}\n", "unknown _profile field"),
        ("_profile: {cell_timeout: soon}\n", "cell_timeout must be a int"),
    ],
)
def test_bad_parameter_files(tmp_path, text, match):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(ParameterError, match=match):
        load_parameter_file(p)


def test_missing_parameter_file(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        load_parameter_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("epochs=3", ("epochs", 3)), ("lr=1e-3", ("lr", 1e-3)), ("name=foo", ("name", "foo")),
     ("counts=[1, 2]", ("counts", [1, 2])), ("flag=true", ("flag", True)), ("note=", ("note", ""))],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["epochs", "2x=3", "=3"])
def test_parse_override_errors(text):
    with pytest.raises(ParameterError):
        parse_override(text)


# -- constraints are checked wherever values come from (issue 21) ---------------------------------------------------

CHECKED = textwrap.dedent(
    """
    epochs: int = 5  # check: min 1; training epochs
    dropout: float = 0.1  # check: in [0, 1)
    counts: list[int] = [10]  # check: each min 1, nonempty
    """
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [({"epochs": 0}, "parameter 'epochs' must satisfy `min 1`, got 0"),
     ({"dropout": 1}, "parameter 'dropout' must satisfy `in [0, 1)`, got 1.0"),
     ({"counts": [3, 0]}, "parameter 'counts' element 1 must satisfy `each min 1`, got 0"),
     ({"counts": []}, "parameter 'counts' must satisfy `nonempty`, got []")],
)
def test_validate_checks_the_declared_constraints(values, expected):
    with pytest.raises(ParameterError) as err:
        validate(parse_parameters(CHECKED), values, source="lab.yaml")
    assert str(err.value).startswith("lab.yaml: ") and expected in str(err.value)


def test_out_of_range_values_in_a_file_and_in_an_override_are_refused(minibook, tmp_path):
    from lib.runtime.run import get_study, resolve_parameters

    study = get_study("demo", minibook)
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: bad\nn: 0\n")
    with pytest.raises(ParameterError) as err:
        resolve_parameters(study, params_file=bad)
    assert f"{bad}: parameter 'n' must satisfy `min 1`, got 0" in str(err.value)
    with pytest.raises(ParameterError) as err:
        resolve_parameters(study, "ci", overrides=dict([parse_override("scale=-2")]))
    assert "--set: parameter 'scale' must satisfy `> 0`, got -2.0" in str(err.value)
    assert resolve_parameters(study, "ci", overrides={"n": 1})[0]["n"] == 1  # the bound itself passes


# -- YAML that expands without bound, or reads unlike what a person wrote (issue 21) -------------------------------


def _alias_bomb() -> str:
    """Nine levels of nine aliases each: about 400 bytes that expand to 9**9 (387 million) strings."""
    names = "abcdefghi"
    lines = ["a: &a [x,x,x,x,x,x,x,x,x]"]
    lines += [f"{n}: &{n} [{','.join([f'*{prev}'] * 9)}]" for prev, n in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    assert 300 < path.stat().st_size < 500
    with pytest.raises(ParameterError) as err:
        load_parameter_file(path)
    msg = str(err.value)
    assert msg.startswith(f"parameter file {path}: line 2: the alias *a repeats")
    assert "aliases are not allowed" in msg and "write the values out" in msg
    with pytest.raises(ParameterError, match=r"override 'counts=\[&x 1, \*x\]': the alias \*x"):
        parse_override("counts=[&x 1, *x]")


class _Leaf:
    """A leaf value that counts how often an error message spells it out."""

    calls = 0

    def __repr__(self) -> str:
        type(self).calls += 1
        return "leaf"


def test_error_messages_spell_out_only_a_bounded_part_of_a_value(specs):
    leaf, value = _Leaf(), None
    value = [leaf] * 9
    for _ in range(5):  # six levels of nine: 531441 leaves, shared as an alias expansion shares them
        value = [value] * 9
    _Leaf.calls = 0
    for key in ("seed", "counts", "note"):
        with pytest.raises(ParameterError) as err:
            validate(specs, {key: value})
        assert f"parameter '{key}'" in str(err.value) and len(str(err.value)) < 300
    with pytest.raises(ParameterError, match="must satisfy"):
        validate(parse_parameters(CHECKED), {"epochs": 0, "counts": [value]})
    assert _Leaf.calls < 1000  # a full repr spells out every one of the 531441 leaves


@pytest.mark.parametrize(
    ("text", "expected"),
    [("n=010", "override 'n=010': `010` has a leading zero, which YAML 1.1 reads as the octal number 8; write 10 "
               "for the decimal number, or quote it ('010') for text"),
     ("n=-007", "write -7 for the decimal number"),
     ("counts=[1, 020]", "override 'counts=[1, 020]' (at counts[1]): `020` has a leading zero"),
     ("n=1:30", "override 'n=1:30': `1:30` is a YAML 1.1 base-60 (sexagesimal) number, read as 90; write 90 for "
                "the number, or quote it ('1:30') for text"),
     ("lr=1:30.5", "read as 90.5; write 90.5 for the number")],
)
def test_overrides_yaml_11_would_misread_are_refused(text, expected):
    with pytest.raises(ParameterError) as err:
        parse_override(text)
    assert expected in str(err.value)


@pytest.mark.parametrize(("text", "expected"), [("n=10", 10), ("n=0", 0), ("n=0x1F", 31), ("name='010'", "010"),
                                                ("t='1:30'", "1:30"), ("lr=1.5", 1.5), ("lr=0.05", 0.05)])
def test_overrides_near_the_refused_spellings_still_read(text, expected):
    assert parse_override(text)[1] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("n: 010\n", "n (line 1): `010` has a leading zero, which YAML 1.1 reads as the octal number 8; write 10"),
     ("seed: 0\n_sweep:\n  grid: {n: [1, 1:30]}\n", "_sweep.grid.n[1] (line 3): `1:30` is a YAML 1.1 base-60"),
     ("full_counts: 1.0e8\n", "full_counts reads as float 100000000.0 in the runner but as str '1.0e8' in plain "
                              "papermill (`papermill -f`, YAML 1.1); write 1.0e+8"),
     ("lr: 1e-3\n", "lr reads as float 0.001 in the runner but as str '1e-3' in plain papermill"),
     ("counts: [1.0e+8, 2E5]\n", "counts[1] reads as float 200000.0 in the runner but as str '2E5' in plain "
                                 "papermill (`papermill -f`, YAML 1.1); write 2.0e+5")],
)
def test_parameter_files_yaml_11_or_papermill_would_misread_are_refused(tmp_path, text, expected):
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    with pytest.raises(ParameterError) as err:
        load_parameter_file(path)
    assert str(err.value).startswith(f"parameter file {path}: ") and expected in str(err.value)


def _papermill_values(path):
    from papermill.iorw import read_yaml_file

    return read_yaml_file(str(path))


def test_an_accepted_parameter_file_means_the_same_to_papermill(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("_profile: {description: d, expected_runtime: 1 min}\nfull_counts: 1.0e+8\nlr: 0.001\n"
                    "n: 10\nwhen: 2026-01-01\nflag: yes\nnothing: null\nnames: [a, '010']\nratio: .nan\n")
    values, _ = load_parameter_file(path)
    theirs = _papermill_values(path)
    theirs.pop("_profile")
    assert list(values) == list(theirs)
    for key, value in values.items():
        assert type(value) is type(theirs[key]), key
        assert value == theirs[key] or value != value and theirs[key] != theirs[key], key
    assert values["when"] == "2026-01-01"  # text, as papermill reads it (no dates)

