"""PGNAA: gamma spectra (readers, synthetic generator), random sampling methods, the likelihood
classifier, class activation maps, the 1D Inception-ResNet-V2, the counts network with a linear path
(``linear_path``), small 1D networks and the chapter's glue (``experiment``)."""

__all__ = ["spectra", "synthetic", "sampling", "bayes", "cam", "inception_resnet1d", "linear_path", "small1d",
           "experiment"]
