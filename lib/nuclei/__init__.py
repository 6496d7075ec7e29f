"""Nuclei segmentation: DSB 2018 readers, synthetic nuclei, MultiResUNet, U-Net, Otsu, instance
metrics, the training recipe (``recipe``) and the chapter's glue (``experiment``)."""

__all__ = ["dsb", "synthetic", "multiresunet", "unet2d", "otsu", "instances", "recipe", "experiment"]
