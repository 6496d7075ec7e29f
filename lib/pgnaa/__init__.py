"""PGNAA: gamma spectra (readers, synthetic generator), random sampling methods, the likelihood
classifier, class activation maps, the 1D Inception-ResNet-V2, small 1D networks and the chapter's
glue (``experiment``)."""

__all__ = ["spectra", "synthetic", "sampling", "bayes", "cam", "inception_resnet1d", "small1d", "experiment"]
