import numpy as np
import pytest
import torch

from lib.repro import git_state, make_generators, package_versions, provenance, resolve_device, set_determinism


def test_set_determinism_repeats_global_draws():
    set_determinism(3)
    a = (np.random.rand(), torch.rand(2), torch.nn.Linear(3, 2).weight.detach().clone())
    set_determinism(3)
    b = (np.random.rand(), torch.rand(2), torch.nn.Linear(3, 2).weight.detach().clone())
    assert a[0] == b[0] and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_set_determinism_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError)):
        set_determinism(bad)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")).type == "cpu"
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(TypeError):
        resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available.*device='auto'"):
        resolve_device("cuda")


def test_make_generators_are_independent_and_repeatable():
    rng1, g1 = make_generators(5)
    rng2, g2 = make_generators(5)
    assert rng1.random() == rng2.random()
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
    rng3, _ = make_generators(6)
    assert rng3.random() != make_generators(5)[0].random()


def test_git_state_without_git(tmp_path):
    state = git_state(tmp_path)
    assert state["commit"] is None and state["dirty"] is None and "no git checkout" in state["error"]


def test_provenance_fields():
    rec = provenance(seed=1, profile="ci", params_sha256="ab", study="x", device="cpu")
    assert rec["seed"] == 1 and rec["profile"] == "ci" and rec["params_sha256"] == "ab"
    assert rec["device"]["device"] == "cpu"
    assert set(package_versions()) >= {"python", "torch", "numpy", "scipy", "SimpleITK", "pandas", "seaborn",
                                       "jupyter-book"}
