"""Training cost per sample of each study's paper-size network: FLOPs and measured step time.

Run::

    OMP_NUM_THREADS=2 python benchmarks/gpu_profile_cost.py [--batch 2] [--steps 2] [--device cpu] [--tflops 30]

For each network the ``gpu`` profiles train at the paper's size (MultiResUNet U=32 and U-Net 32-512 on
256x256x3 images, the perfusion U-Net at full width on 89 frames of 256x256, the authors' V-Net d=32 on
48x64x64 signals, the full IRv2-1D with its linear path on 7,896 channels), it prints the forward+backward
FLOPs per sample (counted by ``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix
products, the bulk of the work), the measured seconds per sample of an Adam training step on ``--device``
and the seconds per sample the FLOPs give at ``--tflops`` sustained TFLOP/s (the assumption the ``gpu``
profiles' loop lengths were sized with). The numbers quoted in ``parameters/<study>/gpu.yaml`` come from
this script.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from lib.core.repro import resolve_device
from lib.nuclei.multiresunet import MultiResUNet
from lib.nuclei.unet2d import UNet2D
from lib.perfusion.unet import UNet
from lib.pgnaa.experiment import make_model
from lib.radiative.vnet import AuthorsVNet


def _networks() -> list[tuple[str, Callable[[], torch.nn.Module], tuple[int, ...], Callable[..., torch.Tensor]]]:
    def seg(out: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(out, (torch.rand_like(out) > 0.8).float())

    def mse(out: torch.Tensor) -> torch.Tensor:
        return out.square().mean()

    def ce(out: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(out, torch.zeros(out.shape[0], dtype=torch.long,
                                                                  device=out.device))

    return [
        ("nuclei MultiResUNet U=32", lambda: MultiResUNet(3, 1, base_filters=32), (3, 256, 256), seg),
        ("nuclei U-Net 32-512", lambda: UNet2D(base_filters=32), (3, 256, 256), seg),
        ("perfusion U-Net w=1 (89 frames)", lambda: UNet(89, 3, width=1.0), (89, 256, 256), mse),
        ("radiative V-Net d=32", lambda: AuthorsVNet(48, 32, keras_bn=True), (48, 64, 64), mse),
        ("pgnaa IRv2-1D full + linear path", lambda: make_model("irv2", 10, 7896, width=1.0, repeats=(10, 20, 9),
                                                                 bin_factor=1, linear_path=True), (7896,), ce),
    ]


def measure(make: Callable[[], torch.nn.Module], shape: tuple[int, ...], loss: Callable[..., torch.Tensor], *,
            batch: int, steps: int, device: torch.device) -> tuple[float, float]:
    """Forward+backward FLOPs per sample and measured seconds per sample of one Adam step.

    Parameters
    ----------
    make : callable
        Builds the network.
    shape : tuple of int
        One sample's input shape.
    loss : callable
        Loss of the network's output.
    batch, steps : int
        Batch size and timed steps (one untimed warm-up step before).
    device : torch.device

    Returns
    -------
    flops_per_sample : float
    seconds_per_sample : float
    """
    model = make().to(device).train()
    x = torch.rand(batch, *shape, device=device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    counter = FlopCounterMode(display=False)
    with counter:
        loss(model(x)).backward()
    flops = counter.get_total_flops() / batch
    opt.zero_grad()
    for i in range(steps + 1):
        if i == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss(model(x)).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return flops, (time.perf_counter() - t0) / (steps * batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tflops", type=float, default=30.0, help="assumed sustained TFLOP/s of the GPU")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    rows = []
    for name, make, shape, loss in _networks():
        flops, sec = measure(make, shape, loss, batch=a.batch, steps=a.steps, device=dev)
        rows.append({"network": name, "GFLOP/sample (fwd+bwd)": round(flops / 1e9, 2),
                     f"{dev.type} s/sample": round(sec, 4), "threads": torch.get_num_threads(),
                     f"ms/sample at {a.tflops:g} TFLOP/s": round(1e3 * flops / (a.tflops * 1e12), 3)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
