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

A file's image header is checked against its pixels before they are decoded (pydicom reads the
header): ``BitsStored <= BitsAllocated`` and ``HighBit = BitsStored - 1``; native (uncompressed)
pixel data must hold exactly ``Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames``
bytes; a JPEG stream's own rows, columns, components and precision must match the header; and the
decoded image must have the header's size. A file that fails any of these would otherwise decode
to plausible-looking garbage (a cut-off image, rows folded into columns, bytes read as pixels).
"""

from __future__ import annotations

import re
import warnings
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


#: JPEG start-of-frame markers (SOF0-SOF15 without DHT, JPG and DAC; SOF55 of JPEG-LS): P, Y, X, Nf follow.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_FIX = (
    "re-copy or re-export the file from its source (PACS, scanner or the dataset's archive); a file whose "
    "header does not describe its pixels cannot be read safely"
)


def _header_int(ds, keyword: str, path: Path, *, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        raise ValueError(f"{path}: the DICOM image header lacks {keyword}, so its pixels cannot be laid out; {_FIX}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: DICOM {keyword} is {value!r}, not an integer; {_FIX}") from None


def _jpeg_frame_header(stream: bytes) -> tuple[int, int, int, int] | None:
    """``(precision, rows, columns, components)`` of a JPEG/JPEG-LS stream's start-of-frame segment, if found."""
    i = 2 if stream[:2] == b"\xff\xd8" else None
    while i is not None and i + 4 <= len(stream):
        if stream[i] != 0xFF:
            return None
        marker = stream[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(stream[i + 2:i + 4], "big")
        if marker in _SOF_MARKERS and i + 10 <= len(stream):
            y, x = int.from_bytes(stream[i + 5:i + 7], "big"), int.from_bytes(stream[i + 7:i + 9], "big")
            return stream[i + 4], y, x, stream[i + 9]
        if marker == 0xDA or length < 2:  # start of scan before any frame header, or a broken segment
            return None
        i += 2 + length
    return None


def _packbits_length(segment: bytes) -> int:
    """Number of bytes a DICOM RLE (PackBits) segment decodes to, without decoding it."""
    n = i = 0
    size = len(segment)
    while i < size:
        h = segment[i]
        if h < 128:  # literal run of h + 1 bytes (cut short at the end: a trailing pad byte adds nothing)
            n += min(h + 1, size - i - 1)
            i += h + 2
        elif h > 128:  # the next byte repeated 257 - h times
            n += 257 - h if i + 1 < size else 0
            i += 2
        else:  # 128: no operation
            i += 1
    return n


def _rle_layout(frame: bytes) -> tuple[int, int]:
    """``(number of segments, decoded bytes of the first segment)`` of one DICOM RLE frame."""
    if len(frame) < 64:
        raise ValueError(f"the RLE header needs 64 bytes, the frame holds {len(frame)}")
    header = np.frombuffer(frame[:64], dtype="<u4")
    count = int(header[0])
    if not 1 <= count <= 15:
        raise ValueError(f"the RLE header announces {count} segments (1 to 15 allowed)")
    start, stop = int(header[1]), int(header[2]) if count > 1 else len(frame)
    if not 64 <= start < stop <= len(frame):
        raise ValueError(f"the first RLE segment runs from byte {start} to {stop} of a {len(frame)}-byte frame")
    return count, _packbits_length(frame[start:stop])


def _check_pixel_header(path: Path) -> tuple[int, int]:
    """Check a DICOM file's image header against its pixel data; return ``(Rows, Columns)``.

    Raises
    ------
    ValueError
        Inconsistent bits fields, native pixel data of the wrong length (truncated, or ``Rows``,
        ``Columns`` or ``BitsAllocated`` wrong), or a JPEG stream whose size, components or
        precision disagree with the header. The message names the file, the numbers and the fix.
    """
    import pydicom
    import pydicom.encaps
    from pydicom.errors import InvalidDicomError

    unreadable = (
        f"cannot read {path} as a DICOM image: no image header (Rows, Columns) and no pixel data were found, so "
        "the file is truncated or not DICOM; check that the file is complete and a DICOM image, and re-copy it "
        "from its source if it was cut"
    )
    try:
        with warnings.catch_warnings():  # pydicom's warnings about a damaged file become the error below
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, defer_size=1024)
            except InvalidDicomError:  # no 128-byte preamble: a bare data set, which GDCM also reads
                ds = pydicom.dcmread(path, defer_size=1024, force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise ValueError(f"{unreadable} (pydicom: {str(err).strip()[:200]})") from err
    if "PixelData" not in ds and "Rows" not in ds:
        raise ValueError(unreadable)
    if "PixelData" not in ds:
        raise ValueError(f"{path}: the DICOM file holds no pixel data (PixelData, 7FE0,0010); {_FIX}")
    rows, cols = _header_int(ds, "Rows", path), _header_int(ds, "Columns", path)
    allocated = _header_int(ds, "BitsAllocated", path)
    stored = _header_int(ds, "BitsStored", path, default=allocated)
    high = _header_int(ds, "HighBit", path, default=stored - 1)
    samples = _header_int(ds, "SamplesPerPixel", path, default=1)
    frames = _header_int(ds, "NumberOfFrames", path, default=1)
    if rows < 1 or cols < 1 or samples < 1 or frames < 1:
        raise ValueError(
            f"{path}: the DICOM header declares Rows {rows}, Columns {cols}, SamplesPerPixel {samples}, "
            f"NumberOfFrames {frames}; each must be at least 1; {_FIX}"
        )
    if allocated not in (1, 8, 16, 32, 64) or not 1 <= stored <= allocated or high != stored - 1:
        raise ValueError(
            f"{path}: inconsistent DICOM bits fields: BitsAllocated {allocated}, BitsStored {stored}, HighBit "
            f"{high}; DICOM requires BitsAllocated in 1, 8, 16, 32, 64, BitsStored <= BitsAllocated and "
            f"HighBit = BitsStored - 1, so the pixel values cannot be trusted; {_FIX}"
        )
    declared = (
        "Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames = "
        f"{rows} x {cols} x {samples} x {allocated}/8 x {frames}"
    )
    raw = ds.get_item("PixelData", keep_deferred=True)
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    undefined = getattr(raw, "length", None) == 0xFFFFFFFF
    if undefined or (syntax is not None and pydicom.uid.UID(syntax).is_encapsulated):
        try:
            first = next(pydicom.encaps.generate_fragmented_frames(ds.PixelData, number_of_frames=frames))
            rle = _rle_layout(b"".join(first)) if syntax == pydicom.uid.RLELossless else None
        except (ValueError, StopIteration, KeyError, OSError, EOFError) as err:
            raise ValueError(
                f"{path}: the compressed pixel data (transfer syntax {syntax}) are not a valid sequence of "
                f"fragments ({err}); the file is truncated or damaged; {_FIX}"
            ) from None
        if rle is not None:
            segments, decoded = rle
            per_sample = -(-allocated // 8)
            if segments != samples * per_sample or decoded not in (rows * cols, rows * cols + 1):
                raise ValueError(
                    f"{path}: the RLE pixel data hold {segments} segment(s) of {decoded} bytes, but the DICOM "
                    f"header declares SamplesPerPixel {samples} x BitsAllocated {allocated}/8 = "
                    f"{samples * per_sample} segment(s) of Rows x Columns = {rows} x {cols} = {rows * cols} "
                    f"bytes; the header was edited or belongs to another image; {_FIX}"
                )
        sof = _jpeg_frame_header(first[0]) if first else None
        if sof is not None:
            precision, y, x, nf = sof
            if (y, x) != (rows, cols) or nf != samples or precision > allocated:
                raise ValueError(
                    f"{path}: the JPEG stream holds {y} rows x {x} columns, {nf} component(s) of {precision} bits, "
                    f"but the DICOM header declares Rows {rows}, Columns {cols}, SamplesPerPixel {samples}, "
                    f"BitsAllocated {allocated}; the header was edited or belongs to another image; {_FIX}"
                )
        return rows, cols
    expected = -(-rows * cols * samples * frames * allocated // 8)
    value, tell = getattr(raw, "value", None), getattr(raw, "value_tell", None)
    length = int(getattr(raw, "length", None) or (len(value) if value is not None else 0))
    size = path.stat().st_size
    if tell is not None and tell + length > size:  # the element's own length runs past the end of the file
        raise ValueError(
            f"{path}: the file is truncated: its pixel data should hold {length} bytes from byte {tell}, but the "
            f"file ends at byte {size}; {_FIX}"
        )
    if length not in (expected, expected + expected % 2):
        what = "too short (a truncated file?)" if length < expected else "too long"
        raise ValueError(
            f"{path}: the pixel data hold {length} bytes but the header declares {declared} = {expected} bytes: "
            f"{what}; Rows, Columns or BitsAllocated was edited, or the pixel data were cut; {_FIX}"
        )
    return rows, cols


def read_dicom(path: str | Path) -> DicomSlice:
    """Read one single-frame DICOM file with SimpleITK, after checking its header against its pixels.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded (not DICOM, truncated, or an unsupported compression), or if its
        header does not describe its pixel data: ``BitsStored > BitsAllocated``, ``HighBit !=
        BitsStored - 1``, native pixel data whose length is not ``Rows x Columns x SamplesPerPixel
        x BitsAllocated/8 x NumberOfFrames`` bytes, or a JPEG stream whose size, components or
        precision disagree with ``Rows``, ``Columns``, ``SamplesPerPixel`` and ``BitsAllocated``.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DICOM file not found: {path}")
    rows, cols = _check_pixel_header(path)  # before decoding: a wrong header can make GDCM allocate or misread
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
    if arr.shape[:2] != (rows, cols):
        raise ValueError(
            f"{path}: the pixel data decode to {arr.shape[0]} rows x {arr.shape[1]} columns, but the DICOM header "
            f"declares Rows {rows}, Columns {cols}; the header was edited or belongs to another image; {_FIX}"
        )
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
