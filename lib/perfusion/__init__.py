"""CT perfusion: physics constants, the digital phantom, DICOM reading, preprocessing, deconvolution
(SVD family, box-NLR), the paper's U-Net, lesion rules and the chapter's glue (``experiment``)."""

__all__ = ["physics", "phantom", "dicom", "preprocess", "deconvolution", "unet", "lesions", "experiment"]
