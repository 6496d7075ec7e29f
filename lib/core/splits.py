"""Train/validation/test splits made in one place, and refused when two of them share a sample.

A model selected or scored on data it was trained on reports a number that means nothing, and nothing
downstream notices: the accuracy is just better. So every study makes its splits with :func:`split_ids`,
which returns a :class:`Split` (named, read-only index and id arrays whose parts are checked to be
disjoint and to cover every id exactly once), and code that receives several sets from elsewhere calls
:func:`check_disjoint` on their ids before it trains, selects or scores anything.

:func:`split_ids` carves the held-out parts one after the other out of what is left, optionally within
each stratum (class) separately. Two random streams reproduce the splits the studies have always made:

``"numpy"`` (default)
    One :class:`numpy.random.Generator` (PCG64) seeded through :class:`numpy.random.SeedSequence`, shared
    by every stage and stratum in order: ``rng.permutation(members)`` of each stratum, the first ``k``
    held out. This is ``np.random.default_rng(seed)`` used the way the PGNAA chapter has split the NIST
    spectra by class.
``"sklearn"``
    Each stage shuffles with a fresh legacy :class:`numpy.random.RandomState` ``(seed)``, exactly what
    scikit-learn's ``train_test_split(..., test_size=k, random_state=seed)`` does (its ``ShuffleSplit``:
    ``permutation[:k]`` held out, the rest kept in permuted order). The nuclei seed's 402/134/134 split is
    two such calls on the sorted ids.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

__all__ = ["Split", "split_ids", "check_disjoint"]

#: How many shared ids an overlap error names.
_SHOW = 5


def _as_list(ids: Iterable[Hashable] | np.ndarray) -> list:
    return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)


def check_disjoint(**named_ids: Iterable[Hashable]) -> None:
    """Raise if any two named id sets share an id.

    Parameters
    ----------
    **named_ids : iterable of hashable
        The ids of each split by name, e.g. ``check_disjoint(train=..., valid=..., test=...)``.

    Raises
    ------
    ValueError
        Naming the first two splits (in argument order) that overlap, how many ids they share and a few
        of them.

    Examples
    --------
    >>> check_disjoint(train=["a", "b"], test=["c"])
    >>> check_disjoint(train=["a", "b"], test=["b", "c"])
    Traceback (most recent call last):
    ...
    ValueError: splits 'train' and 'test' share 1 id ('b'): ...
    """
    sets = {name: set(_as_list(ids)) for name, ids in named_ids.items()}
    for (a, sa), (b, sb) in itertools.combinations(sets.items(), 2):
        common = sa & sb
        if common:
            few = ", ".join(repr(x) for x in sorted(common, key=str)[:_SHOW])
            more = f" and {len(common) - _SHOW} more" if len(common) > _SHOW else ""
            raise ValueError(
                f"splits {a!r} and {b!r} share {len(common)} id{'s' if len(common) > 1 else ''} ({few}{more}): "
                f"a sample may belong to one split only, or the model is trained, selected or scored on data it "
                f"has seen. Make the splits with lib.core.splits.split_ids, or drop the shared ids from one of "
                f"{a!r} and {b!r}.")


@dataclass(frozen=True)
class Split:
    """Named, disjoint parts of a list of ids (returned by :func:`split_ids`).

    Attributes
    ----------
    names : tuple of str
        The parts, in order (the first one is what was left after the others were held out).
    index : mapping of str to numpy.ndarray
        Read-only ``int64`` positions of each part's ids in the list that was split.
    ids : mapping of str to tuple
        Each part's ids, in the order of ``index``.
    """

    names: tuple[str, ...]
    index: Mapping[str, np.ndarray]
    ids: Mapping[str, tuple]

    def __post_init__(self) -> None:
        if set(self.index) != set(self.names) or set(self.ids) != set(self.names):
            raise ValueError(f"a Split needs index and ids for exactly its parts {self.names}, got "
                             f"{sorted(self.index)} and {sorted(self.ids)}")
        index = {}
        for n in self.names:
            a = np.array(self.index[n], dtype=np.int64)
            a.setflags(write=False)
            index[n] = a
            if len(self.ids[n]) != a.size:
                raise ValueError(f"part {n!r} has {a.size} positions but {len(self.ids[n])} ids")
        object.__setattr__(self, "index", MappingProxyType(index))
        object.__setattr__(self, "ids", MappingProxyType({n: tuple(self.ids[n]) for n in self.names}))
        check_disjoint(**{n: self.index[n] for n in self.names})
        check_disjoint(**{n: self.ids[n] for n in self.names})

    def __getitem__(self, name: str) -> list:
        """The ids of part ``name`` as a new list."""
        if name not in self.ids:
            raise KeyError(f"no split part {name!r}; this split has {list(self.names)}")
        return list(self.ids[name])

    def sizes(self) -> dict[str, int]:
        """``{part: number of ids}`` in part order."""
        return {n: len(self.ids[n]) for n in self.names}

    def counts(self, prefix: str) -> dict[str, int]:
        """The sizes as metric names, ``{f"{prefix}_n_{part}": size}`` (e.g. ``nist_n_train``)."""
        return {f"{prefix}_n_{n}": k for n, k in self.sizes().items()}

    def as_dict(self) -> dict[str, list]:
        """``{part: list of ids}`` in part order."""
        return {n: list(self.ids[n]) for n in self.names}


def _held_out(fraction: float, n: int, remaining: int) -> int:
    """Ids a held-out ``fraction`` takes from a stratum of ``n`` (``remaining`` still unassigned).

    ``round(fraction * n)`` (half to even, as Python's ``round``), at least one while two or more
    remain, and never the last one (the first part keeps at least one id of every stratum).
    """
    if remaining < 2:
        return 0
    return min(max(1, int(round(fraction * n))), remaining - 1)


def split_ids(
    ids: Sequence[Hashable] | np.ndarray,
    *,
    sizes: Sequence[int] | None = None,
    fractions: Sequence[float] | None = None,
    names: Sequence[str] = ("train", "valid", "test"),
    seed: int | np.random.SeedSequence = 0,
    stratify: Sequence[Hashable] | np.ndarray | None = None,
    stream: Literal["numpy", "sklearn"] = "numpy",
    sort: bool = False,
) -> Split:
    """Split ``ids`` into disjoint named parts that cover every id once.

    The parts ``names[1:]`` are held out one after the other from what is left (``sizes`` ids, or
    ``fractions`` of the ids, each); ``names[0]`` keeps the rest.

    Parameters
    ----------
    ids : sequence of hashable
        Unique ids (file names, image ids, row numbers).
    sizes : sequence of int, optional
        Ids of each held-out part ``names[1:]`` (not with ``stratify``).
    fractions : sequence of float, optional
        Fraction of all ids (of each stratum with ``stratify``) in each held-out part, rounded half to
        even, at least one while two or more ids (of the stratum) are left, never the last one.
    names : sequence of str
        Part names; the first is the remainder (two or more names).
    seed : int or numpy.random.SeedSequence
        Seed of the random stream.
    stratify : sequence of hashable, optional
        One label per id: every part is drawn within each label separately (labels in sorted order).
    stream : {"numpy", "sklearn"}
        The random stream (see the module docstring): ``"sklearn"`` reproduces scikit-learn's
        ``train_test_split(random_state=seed)`` stage by stage (an ``int`` seed, no ``stratify``).
    sort : bool
        Return every part in the order of ``ids`` (else in drawn order, as scikit-learn does).

    Returns
    -------
    Split

    Raises
    ------
    ValueError
        Duplicate ids, a wrong number of sizes or fractions, parts that leave nothing for ``names[0]``,
        or a ``stratify`` of the wrong length.

    Examples
    --------
    >>> s = split_ids([f"img{i}" for i in range(10)], sizes=(2, 2), seed=42, stream="sklearn")
    >>> s.sizes()
    {'train': 6, 'valid': 2, 'test': 2}
    """
    items = _as_list(ids)
    n = len(items)
    names = tuple(names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"names must be two or more distinct part names, got {names}")
    dup = sorted((x for x, c in Counter(items).items() if c > 1), key=str)
    if dup:
        raise ValueError(f"{len(dup)} id(s) appear more than once in the list to split (e.g. {dup[:_SHOW]}): an id "
                         f"may appear once, or its copies could land in two parts; deduplicate the ids first")
    if (sizes is None) == (fractions is None):
        raise ValueError("give exactly one of sizes= (ids per held-out part) or fractions= (fraction per part)")
    amounts = list(sizes if sizes is not None else fractions)  # type: ignore[arg-type]
    if len(amounts) != len(names) - 1:
        raise ValueError(f"{len(amounts)} {'sizes' if sizes is not None else 'fractions'} for the {len(names) - 1} "
                         f"held-out parts {names[1:]}; give one per part after {names[0]!r}")
    if stream not in ("numpy", "sklearn"):
        raise ValueError(f"stream must be 'numpy' or 'sklearn', got {stream!r}")
    if sizes is not None:
        if stratify is not None:
            raise ValueError("sizes= cannot be combined with stratify=; give fractions= per stratum instead")
        if any(int(k) != k or k < 0 for k in amounts) or sum(amounts) > n - 1:
            raise ValueError(f"sizes {tuple(amounts)} must be non-negative integers leaving at least one of the "
                             f"{n} ids for {names[0]!r}")
    elif any(not 0 < f < 1 for f in amounts) or sum(amounts) >= 1:
        raise ValueError(f"fractions {tuple(amounts)} must lie in (0, 1) and sum to less than 1")
    if stream == "sklearn" and (stratify is not None or not isinstance(seed, (int, np.integer))):
        raise ValueError("stream='sklearn' reproduces train_test_split(random_state=seed): it needs an int seed "
                         "and no stratify")
    if stratify is not None:
        labels = np.asarray(_as_list(stratify))
        if labels.shape != (n,):
            raise ValueError(f"stratify has {labels.size} labels for {n} ids; give one label per id")
        pools = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    else:
        pools = [np.arange(n)]
    totals = [p.size for p in pools]
    rng = np.random.default_rng(seed) if stream == "numpy" else None
    parts: dict[str, np.ndarray] = {}
    for name, amount in zip(names[1:], amounts):
        if stream == "sklearn":
            rng_legacy = np.random.RandomState(int(seed))
        taken = []
        for s, pool in enumerate(pools):
            perm = rng.permutation(pool) if rng is not None else pool[rng_legacy.permutation(pool.size)]
            k = int(amount) if sizes is not None else _held_out(float(amount), totals[s], pool.size)
            taken.append(perm[:k])
            pools[s] = perm[k:]
        parts[name] = np.concatenate(taken)
    parts[names[0]] = np.concatenate(pools)
    if sort:
        parts = {k: np.sort(v) for k, v in parts.items()}
    index = {k: parts[k] for k in names}
    return Split(names, index, {k: tuple(items[i] for i in v) for k, v in index.items()})
