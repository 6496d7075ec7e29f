"""Network building blocks shared by the studies' models.

:class:`ConvNormAct` is the convolution -> normalisation -> activation unit that the U-Nets, V-Nets,
MultiResUNet and the 1D spectrum classifiers repeat. Its children are created in that order (so
a model built from it draws the same initial weights from the same seed as one written out with
``nn.Sequential(Conv, BatchNorm, ReLU)``) and named ``conv``, ``norm`` and ``act`` in its
``state_dict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import nn

__all__ = ["ConvNormAct", "ACTIVATIONS"]

#: Activations by name (``inplace=True`` as the studies' networks use them).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
}

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class ConvNormAct(nn.Sequential):
    """``Conv -> BatchNorm -> activation``, each part optional but the convolution.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels (>= 1).
    kernel_size : int
        Kernel size along every spatial axis.
    stride : int, default 1
    padding : int or "same", default "same"
        ``"same"`` pads ``kernel_size // 2`` (an odd kernel with stride 1 keeps the size); give an int
        for even kernels or strided convolutions.
    dims : {1, 2, 3}, default 2
        Spatial dimensions (``Conv1d``/``Conv2d``/``Conv3d``).
    norm : "batch", None or callable, default "batch"
        ``"batch"``: ``BatchNorm{dims}d(out_ch, eps=bn_eps, momentum=bn_momentum)``; ``None``: no
        normalisation; a callable ``norm(out_ch) -> nn.Module`` for another normalisation (e.g. a
        batch norm with a learnable shift only).
    act : "relu", "elu", None or callable, default "relu"
        The activation (``inplace=True``), none, or a factory ``act() -> nn.Module``.
    bias : bool, optional
        Bias of the convolution; default: only without normalisation (a batch norm's shift makes it
        redundant).
    bn_momentum, bn_eps : float, default 0.1, 1e-5
        PyTorch's batch-norm constants (Keras' momentum 0.99 is PyTorch's 0.01; Keras' eps is 1e-3).
    transposed : bool, default False
        A transposed convolution (``ConvTranspose{dims}d``, ``padding`` an int) instead.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel_size: int, stride: int = 1,
                 padding: int | Literal["same"] = "same", dims: Literal[1, 2, 3] = 2,
                 norm: Literal["batch"] | None | Callable[[int], nn.Module] = "batch",
                 act: Literal["relu", "elu"] | None | Callable[[], nn.Module] = "relu", bias: bool | None = None,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5, transposed: bool = False) -> None:
        for name, value in (("in_ch", in_ch), ("out_ch", out_ch), ("kernel_size", kernel_size), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ConvNormAct: {name} must be a positive int, got {value!r}")
        if dims not in _CONV:
            raise ValueError(f"ConvNormAct: dims must be 1, 2 or 3, got {dims!r}")
        if padding == "same":
            if transposed:
                raise ValueError("ConvNormAct: a transposed convolution needs an int padding, not 'same'")
            padding = kernel_size // 2
        elif isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"ConvNormAct: padding must be 'same' or an int >= 0, got {padding!r}")
        if not (norm is None or norm == "batch" or callable(norm)):
            raise ValueError(f"ConvNormAct: norm must be 'batch', None or a callable out_ch -> module, got {norm!r}")
        if not (act is None or callable(act) or act in ACTIVATIONS):
            raise ValueError(f"ConvNormAct: act must be one of {sorted(ACTIVATIONS)}, None or a callable, got {act!r}")
        conv = (_CONV_T if transposed else _CONV)[dims]
        super().__init__()
        self.add_module("conv", conv(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                                     bias=norm is None if bias is None else bias))
        if norm == "batch":
            self.add_module("norm", _BN[dims](out_ch, eps=bn_eps, momentum=bn_momentum))
        elif norm is not None:
            self.add_module("norm", norm(out_ch))
        if act is not None:
            self.add_module("act", ACTIVATIONS[act]() if isinstance(act, str) else act())

    @property
    def in_channels(self) -> int:
        """Input channels (those of the convolution)."""
        return self.conv.in_channels

    @property
    def out_channels(self) -> int:
        """Output channels (those of the convolution)."""
        return self.conv.out_channels
