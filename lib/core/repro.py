"""Reproducibility: determinism, device resolution, generators and file digests.

Run provenance (git state, package versions, the record written beside every run) is
:mod:`lib.runtime.provenance`.

Library functions take explicit ``numpy.random.Generator`` / ``torch.Generator``
arguments; :func:`set_determinism` only pins the *global* state that third-party
code (PyTorch initialisers, cuDNN algorithm choice) reads.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "set_determinism",
    "resolve_device",
    "make_generators",
    "derive_seed",
    "sha256_file",
    "device_info",
]



def set_determinism(seed: int, *, strict: bool = False) -> None:
    """Seed Python, NumPy and PyTorch and make cuDNN deterministic.

    Parameters
    ----------
    seed : int
        Non-negative seed; reduced modulo ``2**32`` for NumPy's legacy global state.
    strict : bool, default False
        Also call ``torch.use_deterministic_algorithms(True)``, which makes PyTorch raise
        on operations that have no deterministic implementation (slower, stricter).

    Notes
    -----
    Results are reproducible for the same software, hardware and device; PyTorch does
    not promise bitwise equality across releases or between CPU and GPU.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - global state for third-party code, on purpose
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(strict, warn_only=False)


def resolve_device(device: Any = "auto"):
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device`` into a device.

    ``"auto"`` picks CUDA when available, then Apple MPS, else the CPU. Asking for
    CUDA on a machine without it is an error that says so (rather than a late crash).
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        name = device.strip().lower()
        if name == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            dev = torch.device(name)
        except RuntimeError as err:
            raise ValueError(
                f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
            ) from err
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} requested but CUDA is not available on this machine; "
            "use device='auto' or 'cpu'"
        )
    return dev


def make_generators(seed: int, device: Any = "cpu") -> tuple[np.random.Generator, Any]:
    """A NumPy ``Generator`` and a ``torch.Generator`` (on ``device``) from one seed.

    The two streams are derived from independent children of ``SeedSequence(seed)``.
    """
    import torch

    ss = np.random.SeedSequence(int(seed))
    np_child, torch_child = ss.spawn(2)
    rng = np.random.default_rng(np_child)
    dev = resolve_device(device)
    gen = torch.Generator(device=dev.type if dev.type != "mps" else "cpu")
    gen.manual_seed(int(torch_child.generate_state(1, dtype=np.uint64)[0] % (2**63)))
    return rng, gen


def _key_word(key: str | int) -> int:
    """One spawn-key word: a non-negative int as it is, a name as the first 8 bytes of its SHA-256."""
    if isinstance(key, bool):
        raise TypeError(f"derive_seed: a key must be a name (str) or a non-negative int, got the bool {key!r}")
    if isinstance(key, (int, np.integer)):
        if key < 0:
            raise ValueError(f"derive_seed: an int key must be >= 0, got {key}")
        return int(key)
    if isinstance(key, str) and key:
        return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    raise TypeError(f"derive_seed: a key must be a non-empty name (str) or a non-negative int, got {key!r}")


def derive_seed(seed: int, *keys: str | int) -> int:
    """The seed of a named sub-stream of ``seed``: the one way a study derives its seeds.

    ``derive_seed(seed, "valid_crops")`` or ``derive_seed(seed, "bump_training", i)`` instead of
    offsets such as ``seed + 7`` (whose streams overlap between runs: run ``seed=0``'s "+1" stream
    is run ``seed=1``'s main stream). The result is the first 64-bit word of
    ``numpy.random.SeedSequence(seed, spawn_key=keys)``, with names hashed to 64-bit words
    (SHA-256), reduced to ``[0, 2**63)`` so that ``torch.manual_seed`` takes it.

    Parameters
    ----------
    seed : int
        The run's seed (>= 0).
    *keys : str or int
        The path of the sub-stream: names and non-negative ints (at least one).

    Returns
    -------
    int
        A seed in ``[0, 2**63)``. The same arguments give the same seed on every machine and in
        any order of calls; different keys give unrelated seeds.

    Examples
    --------
    >>> derive_seed(0, "flip") == derive_seed(0, "flip") != derive_seed(1, "flip")
    True
    >>> derive_seed(0, "bump_training", 1) != derive_seed(0, "bump_training", 2)
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"derive_seed: seed must be a non-negative int, got {seed!r}")
    if not keys:
        raise ValueError("derive_seed needs at least one key naming the sub-stream, e.g. derive_seed(seed, 'flip'); "
                         "the run's own stream is `seed` itself")
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(_key_word(k) for k in keys))
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63))


def sha256_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def device_info(device: Any = "auto") -> dict[str, Any]:
    """The resolved torch device with its name, CUDA and cuDNN versions."""
    import torch

    dev = resolve_device(device)
    info: dict[str, Any] = {
        "device": str(dev),
        "device_name": platform.processor() or platform.machine(),
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "cuda_device_count": torch.cuda.device_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(dev)
    return info
