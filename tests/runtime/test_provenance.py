from lib.runtime.provenance import git_state, package_versions, provenance


def test_git_state_without_git(tmp_path):
    state = git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None and "no git checkout" in state["error"]


def test_provenance_fields():
    rec = provenance(seed=1, profile="ci", params_sha256="ab", study="x", device="cpu")
    assert rec["seed"] == 1 and rec["profile"] == "ci" and rec["params_sha256"] == "ab"
    assert rec["device"]["device"] == "cpu"
    assert set(package_versions()) >= {"python", "torch", "numpy", "scipy", "SimpleITK", "pandas", "seaborn",
                                       "jupyter-book"}
