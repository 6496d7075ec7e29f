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
