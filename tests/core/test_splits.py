"""The one split helper: the studies' exact splits against independent references, and overlap refused."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from lib.core import splits
from lib.core.splits import Split, check_disjoint, split_ids


@pytest.mark.parametrize("n,size,seed", [(670, 134, 42), (48, 9, 42), (11, 2, 0), (20, 4, 7)])
def test_sklearn_stream_is_train_test_split_twice(n, size, seed):
    """The nuclei seed's split: two scikit-learn calls, ids AND their order (the chapter takes prefixes)."""
    from sklearn.model_selection import train_test_split

    ids = [f"img-{i:04d}" for i in range(n)]
    train, valid = train_test_split(ids, test_size=size, random_state=seed)
    train, test = train_test_split(train, test_size=size, random_state=seed)
    s = split_ids(ids, sizes=(size, size), names=("train", "valid", "test"), seed=seed, stream="sklearn")
    assert (s["train"], s["valid"], s["test"]) == (list(train), list(valid), list(test))
    assert s.sizes() == {"train": n - 2 * size, "valid": size, "test": size}
    assert [ids[i] for i in s.index["test"]] == list(test)


def _pgnaa_inline(labels: np.ndarray, seed: int) -> tuple[list[int], list[int]]:
    """The PGNAA chapter's split by spectrum as it was written inline before the helper existed."""
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) >= 2:
            test_mask[idx[: max(1, int(round(0.3 * len(idx))))]] = True
    return np.flatnonzero(~test_mask).tolist(), np.flatnonzero(test_mask).tolist()


@pytest.mark.parametrize("seed", [60, 61, 77])
def test_numpy_stream_stratified_is_the_pgnaa_split(seed):
    rng = np.random.default_rng(5)
    for labels in (np.repeat(np.arange(13), 25), np.repeat(np.arange(5), 2), rng.integers(0, 6, 41),
                   np.array([0, 1, 1, 2, 2, 2, 3])):
        s = split_ids(np.arange(labels.size), fractions=(0.3,), names=("train", "test"), seed=seed,
                      stratify=labels, sort=True)
        assert (s.index["train"].tolist(), s.index["test"].tolist()) == _pgnaa_inline(labels, seed)


def test_stratified_fractions_round_and_keep_one_of_each_class():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 1 + [3] * 5)
    s = split_ids(np.arange(labels.size), fractions=(0.3,), names=("train", "test"), seed=0, stratify=labels)
    test = labels[s.index["test"]]
    # round(3.0) = 3, 0.6 -> at least 1, a singleton stays in train, round(1.5) = 2 (half to even)
    assert np.bincount(test, minlength=4).tolist() == [3, 1, 0, 2]
    assert np.bincount(labels[s.index["train"]], minlength=4).tolist() == [7, 1, 1, 3]


def test_parts_cover_every_id_once_and_are_read_only():
    ids = np.arange(100) * 3
    s = split_ids(ids, fractions=(0.2, 0.1), seed=np.random.SeedSequence(9))
    assert sorted(sum(s.as_dict().values(), [])) == ids.tolist()
    assert s.sizes() == {"train": 70, "valid": 20, "test": 10}
    assert s.counts("nuclei") == {"nuclei_n_train": 70, "nuclei_n_valid": 20, "nuclei_n_test": 10}
    assert split_ids(ids, fractions=(0.2, 0.1), seed=9).as_dict() == s.as_dict()  # int seed == its SeedSequence
    assert split_ids(ids, fractions=(0.2, 0.1), seed=10).as_dict() != s.as_dict()
    with pytest.raises(ValueError, match="read-only"):
        s.index["test"][0] = 0
    with pytest.raises(TypeError):
        s.ids["test"] = ()  # type: ignore[index]
    with pytest.raises(KeyError, match=r"no split part 'val'.*\['train', 'valid', 'test'\]"):
        s["val"]


def test_check_disjoint_names_both_splits_and_the_shared_ids():
    check_disjoint(train=["a", "b"], valid=["c"], test=np.array(["d"]))
    with pytest.raises(ValueError, match=r"splits 'valid' and 'test' share 2 ids \('c', 'e'\)"):
        check_disjoint(train=["a", "b"], valid=["c", "e"], test=["e", "c", "f"])
    with pytest.raises(ValueError, match=r"'train' and 'test' share 6 ids \(0, 1, 10, 11, 2 and 1 more\).*split_ids"):
        check_disjoint(train=range(12), test=[11, 10, 0, 1, 2, 3, 50])
    with pytest.raises(ValueError, match="share"):
        Split(("train", "test"), {"train": [0, 1], "test": [1]}, {"train": ("a", "b"), "test": ("b",)})


def test_bad_requests_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"appear more than once.*\['a'\].*deduplicate"):
        split_ids(["a", "b", "a", "c"], sizes=(1, 1))
    with pytest.raises(ValueError, match="exactly one of sizes"):
        split_ids(list("abcdef"), sizes=(1, 1), fractions=(0.1, 0.1))
    with pytest.raises(ValueError, match="exactly one of sizes"):
        split_ids(list("abcdef"))
    with pytest.raises(ValueError, match=r"1 sizes for the 2 held-out parts \('valid', 'test'\)"):
        split_ids(list("abcdef"), sizes=(1,))
    with pytest.raises(ValueError, match="at least one of the 6 ids for 'train'"):
        split_ids(list("abcdef"), sizes=(3, 3))
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_ids(list("abcdef"), fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match="int seed and no stratify"):
        split_ids(list("abcdef"), fractions=(0.2, 0.2), stratify=[0, 0, 0, 1, 1, 1], stream="sklearn")
    with pytest.raises(ValueError, match="stratify has 2 labels for 6 ids"):
        split_ids(list("abcdef"), fractions=(0.2, 0.2), stratify=[0, 1])
    with pytest.raises(ValueError, match="cannot be combined with stratify"):
        split_ids(list("abcdef"), sizes=(1, 1), stratify=[0, 0, 0, 1, 1, 1])


def test_docstring_examples():
    assert doctest.testmod(splits, optionflags=doctest.ELLIPSIS).failed == 0
