"""Reader for UniToBrain CT-perfusion DICOM files and study folders (SimpleITK).

Layout of one study (Gava et al., IEEE DataPort 2021, doi 10.21227/x8ea-vh16)::

    <root>/MOL-XXX/IM-*.dcm                                          raw frames (JPEG-lossless)
    <root>/MOL-XXX_Registered_Filtered_3mm_20HU/FilteredNNNNN.dcm     registered + bilateral (network input)
    <root>/MOL-XXX_Registered_Filtered_3mm_20HU_Maps/NLR_<MAP>/NLR_<MAP>NNNNN.dcm   box-NLR maps

Frames are grouped by the z of ``ImagePositionPatient`` and ordered in time by file index
(the acquisition-time tags are unreliable in this dataset); maps are matched to frame
groups by z, never by index. SimpleITK (GDCM) decodes every transfer syntax used here,
including JPEG-lossless, and applies ``RescaleSlope``/``RescaleIntercept``, so values come out
in physical units (HU, ml/100 g, ml/100 g/min, s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DicomSlice",
    "UniToBrainStudy",
    "read_dicom",
    "window_to_unit",
    "load_unitobrain_study",
    "PROTOCOL_DT",
]

#: Frame interval (s) by number of frames per slice: cine (89 x 0.5 s) and shuttle (18 x 2.81 s).
PROTOCOL_DT: dict[int, float] = {89: 0.5, 18: 2.81}


@dataclass
class DicomSlice:
    """One DICOM image in physical units.

    Attributes
    ----------
    array : ndarray, shape (H, W), float32
        Pixel values after slope/intercept (HU for frames; map units for maps).
    spacing_mm : tuple of float
        (row, column) pixel spacing, mm.
    z : float
        ``ImagePositionPatient[2]``, mm (rounded to 0.01 mm).
    window : tuple of float or None
        (centre, width) of the DICOM display window.
    slope, intercept : float
        Rescale parameters found in the header (already applied to ``array``).
    description : str
        SeriesDescription.
    path : Path
    """

    array: np.ndarray
    spacing_mm: tuple[float, float]
    z: float
    window: tuple[float, float] | None
    slope: float
    intercept: float
    description: str
    path: Path


def _first_number(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
    return float(m.group()) if m else None


def read_dicom(path: str | Path) -> DicomSlice:
    """Read one single-frame DICOM file with SimpleITK.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded (not DICOM, truncated, or an unsupported compression).
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DICOM file not found: {path}")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("GDCMImageIO")
    try:
        reader.ReadImageInformation()
        img = reader.Execute()
    except RuntimeError as err:
        raise ValueError(
            f"cannot read {path} as DICOM ({str(err).strip().splitlines()[-1][:200]}); "
            "check that the file is complete and a DICOM image (SimpleITK/GDCM decodes JPEG-lossless)"
        ) from err

    def tag(key: str) -> str | None:
        return reader.GetMetaData(key) if reader.HasMetaDataKey(key) else None

    arr = np.asarray(sitk.GetArrayFromImage(img), dtype=np.float32)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(f"{path} holds {arr.shape[0]} frames; expected a single-frame slice")
        arr = arr[0]
    sx, sy = img.GetSpacing()[:2]
    ipp = tag("0020|0032")
    z = float(ipp.split("\\")[2]) if ipp and ipp.count("\\") >= 2 else float(img.GetOrigin()[2])
    wc, ww = _first_number(tag("0028|1050")), _first_number(tag("0028|1051"))
    slope = _first_number(tag("0028|1053"))
    intercept = _first_number(tag("0028|1052"))
    return DicomSlice(
        array=arr,
        spacing_mm=(float(sy), float(sx)),
        z=round(z, 2),
        window=(wc, ww) if wc is not None and ww is not None else None,
        slope=1.0 if slope is None else slope,
        intercept=0.0 if intercept is None else intercept,
        description=(tag("0008|103e") or "").strip(),
        path=path,
    )


def window_to_unit(x: np.ndarray, center: float, width: float, *, quantize: bool = True) -> np.ndarray:
    """The paper's "[0, 1]" scaling: clip to ``[center - width/2, center + width/2]`` and rescale.

    With ``quantize=True`` the value is first rounded to 8 bits (``uint8``, as the authors'
    ``win_scale`` did) and divided by 255.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    lo = center - width / 2.0
    u = np.clip((np.asarray(x, dtype=np.float64) - lo) / width, 0.0, 1.0)
    if quantize:
        u = np.round(u * 255.0) / 255.0
    return u.astype(np.float32)


@dataclass
class UniToBrainStudy:
    """One UniToBrain study as arrays.

    Attributes
    ----------
    frames : ndarray, shape (Z, T, H, W), float32
        Network-input frames in HU.
    z : ndarray, shape (Z,)
        Slice positions, mm.
    dt : float
        Frame interval, s (0.5 for 89 frames, 2.81 for 18).
    maps : dict of str -> ndarray, shape (Z, H, W)
        Maps in physical units, e.g. ``maps["CBV"]`` in ml/100 g; slices without a map are NaN.
    map_windows : dict of str -> (centre, width)
        DICOM window of each map (the paper's target scaling).
    frame_window : (centre, width)
        DICOM window of the frames (40/400 HU, the paper's input scaling).
    spacing_mm : (float, float)
    """

    frames: np.ndarray
    z: np.ndarray
    dt: float
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    map_windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    frame_window: tuple[float, float] | None = None
    spacing_mm: tuple[float, float] = (1.0, 1.0)

    def unit_frames(self) -> np.ndarray:
        """Frames scaled to [0, 1] by the frame window (default 40/400 HU)."""
        c, w = self.frame_window or (40.0, 400.0)
        return window_to_unit(self.frames, c, w)

    def unit_map(self, name: str) -> np.ndarray:
        """Map scaled to [0, 1] by its own DICOM window."""
        if name not in self.maps:
            raise KeyError(f"map {name!r} not loaded; available: {sorted(self.maps)}")
        c, w = self.map_windows[name]
        return window_to_unit(np.nan_to_num(self.maps[name]), c, w)


def _index(p: Path) -> int:
    m = re.findall(r"\d+", p.stem)
    if not m:
        raise ValueError(f"cannot find a frame index in file name {p.name}")
    return int(m[-1])


def load_unitobrain_study(
    root: str | Path,
    patient: str,
    *,
    maps: tuple[str, ...] = ("CBV", "CBF", "TTP", "MTT"),
    input_folder: str = "_Registered_Filtered_3mm_20HU",
) -> UniToBrainStudy:
    """Load the network input frames and NLR maps of one UniToBrain study.

    Parameters
    ----------
    root : path
        Folder holding ``<patient><input_folder>/`` and ``<patient><input_folder>_Maps/``.
    patient : str
        Study name, e.g. ``"MOL-001"``.
    maps : tuple of str
        Map names to load (sub-folders ``NLR_<name>``); missing map folders raise.
    input_folder : str
        Suffix of the frame folder.

    Raises
    ------
    FileNotFoundError
        Missing study or map folder, or a folder without ``.dcm`` files.
    ValueError
        Unreadable files, slices with different frame counts, a frame count that is neither 89
        nor 18, or a map whose z matches no frame group.
    """
    root = Path(root)
    fdir = root / f"{patient}{input_folder}"
    if not fdir.is_dir():
        raise FileNotFoundError(
            f"frame folder {fdir} not found; expected the UniToBrain layout "
            f"<root>/{patient}{input_folder}/Filtered00001.dcm ..."
        )
    files = sorted(fdir.glob("*.dcm"), key=_index)
    if not files:
        raise FileNotFoundError(f"no .dcm files in {fdir}")
    slices = [read_dicom(f) for f in files]
    groups: dict[float, list[DicomSlice]] = {}
    for s in slices:  # file order is time order
        groups.setdefault(s.z, []).append(s)
    counts = {z: len(g) for z, g in groups.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(
            f"inconsistent frame counts per slice in {fdir}: {counts}; the series is incomplete or mixes protocols"
        )
    T = next(iter(counts.values()))
    if T not in PROTOCOL_DT:
        raise ValueError(f"{fdir}: {T} frames per slice; expected 89 (cine, 0.5 s) or 18 (shuttle, 2.81 s)")
    zs = np.array(sorted(groups))
    shapes = {g[0].array.shape for g in groups.values()}
    if len(shapes) != 1:
        raise ValueError(f"{fdir}: frames have different sizes {shapes}")
    frames = np.stack([np.stack([s.array for s in groups[z]]) for z in zs]).astype(np.float32)
    study = UniToBrainStudy(
        frames=frames, z=zs, dt=PROTOCOL_DT[T], frame_window=slices[0].window, spacing_mm=slices[0].spacing_mm
    )
    mroot = root / f"{patient}{input_folder}_Maps"
    for name in maps:
        mdir = mroot / f"NLR_{name}"
        if not mdir.is_dir():
            raise FileNotFoundError(f"map folder {mdir} not found; pass maps=() to load frames only")
        mfiles = sorted(mdir.glob("*.dcm"), key=_index)
        if not mfiles:
            raise FileNotFoundError(f"no .dcm files in {mdir}")
        arr = np.full((zs.size,) + frames.shape[-2:], np.nan, np.float32)
        window = None
        for f in mfiles:
            m = read_dicom(f)
            hit = np.flatnonzero(np.isclose(zs, m.z, atol=0.01))
            if hit.size == 0:
                raise ValueError(f"map {f} at z = {m.z} mm matches no frame slice (z = {zs.tolist()})")
            if m.array.shape != frames.shape[-2:]:
                raise ValueError(f"map {f} has shape {m.array.shape}, frames have {frames.shape[-2:]}")
            arr[hit[0]] = m.array
            window = window or m.window
        study.maps[name] = arr
        study.map_windows[name] = window or (float(np.nanmax(arr)) / 2, float(np.nanmax(arr)) or 1.0)
    return study
