"""UniToBrain DICOM reader: the three real samples and a small fake study tree."""

import os
from pathlib import Path

import numpy as np
import pytest

from lib.perfusion import dicom


def _samples() -> Path:
    root = Path(os.environ.get("STUDIES_DATA_MIRROR", "/nonexistent")) / "perfusion" / "unitobrain-samples"
    if not (root / "NLR_CBV00003.dcm").is_file():
        pytest.skip("UniToBrain samples not in the data mirror")
    return root


def test_real_raw_jpeg_lossless_frame():
    s = dicom.read_dicom(_samples() / "IM-0001-0001-0001.dcm")
    assert s.array.shape == (512, 512)
    assert s.intercept == -1024 and s.slope == 1
    assert s.window == (40.0, 400.0)
    assert s.z == pytest.approx(155.75)
    assert s.spacing_mm[0] == pytest.approx(0.488, abs=1e-3)
    brain = s.array[200:300, 200:300]
    assert 0 < np.median(brain) < 80  # HU of brain tissue after intercept


def test_real_registered_frame_matches_raw_in_hu():
    raw = dicom.read_dicom(_samples() / "IM-0001-0001-0001.dcm").array
    reg = dicom.read_dicom(_samples() / "Registered00001.dcm")
    assert reg.slope == pytest.approx(0.1) and reg.intercept == pytest.approx(-1000)
    inside = raw > -1000
    # frame 1 is the registration reference: identical up to the 0.1 HU quantisation
    assert np.abs(reg.array[inside] - raw[inside]).max() <= 0.051 + 1e-3


def test_real_nlr_cbv_map_units_and_paper_scaling():
    m = dicom.read_dicom(_samples() / "NLR_CBV00003.dcm")
    assert m.slope == pytest.approx(0.01) and m.window == (2.0, 4.0)
    tissue = m.array[m.array > 0]
    assert 0.5 < np.median(tissue) < 2.0  # ml/100 g
    assert np.mean(m.array == 0) == pytest.approx(0.79, abs=0.02)
    u = dicom.window_to_unit(m.array, *m.window)
    assert u.min() >= 0 and u.max() <= 1
    assert np.allclose(u * 255, np.round(u * 255), atol=1e-4)


def _write(path: Path, arr: np.ndarray, z: float, slope: float, intercept: float, wc: float, ww: float, desc: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesDescription = desc
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [0.5, 0.5]
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.WindowCenter, ds.WindowWidth = wc, ww
    ds.PixelData = arr.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def fake_tree(tmp_path):
    """A fake UniToBrain study: 2 slices x 18 frames (shuttle), interleaved by z, and 2 maps."""
    rng = np.random.default_rng(0)
    fdir = tmp_path / "MOL-999_Registered_Filtered_3mm_20HU"
    truth = np.zeros((2, 18, 8, 8))
    k = 1
    for t in range(18):
        for zi, z in enumerate((20.0, 15.0)):  # deliberately not sorted by z
            hu = np.round(rng.uniform(0, 80, (8, 8)), 1)
            truth[1 - zi, t] = hu  # sorted z: 15 first
            _write(fdir / f"Filtered{k:05d}.dcm", np.round((hu + 1000) / 0.1), z, 0.1, -1000, 40, 400, "Filtered")
            k += 1
    mdir = tmp_path / "MOL-999_Registered_Filtered_3mm_20HU_Maps" / "NLR_CBV"
    cbv = np.array([np.full((8, 8), 1.5), np.full((8, 8), 3.0)])
    _write(mdir / "NLR_CBV00001.dcm", cbv[1] / 0.01, 20.0, 0.01, 0, 2, 4, "NLR_CBV")  # map of z=20 first
    _write(mdir / "NLR_CBV00002.dcm", cbv[0] / 0.01, 15.0, 0.01, 0, 2, 4, "NLR_CBV")
    return tmp_path, truth, cbv


def test_fake_study_grouping_ordering_and_maps(fake_tree):
    root, truth, cbv = fake_tree
    st = dicom.load_unitobrain_study(root, "MOL-999", maps=("CBV",))
    assert st.frames.shape == (2, 18, 8, 8)
    assert st.dt == pytest.approx(2.81)
    np.testing.assert_allclose(st.z, [15.0, 20.0])
    np.testing.assert_allclose(st.frames, truth, atol=0.06)
    np.testing.assert_allclose(st.maps["CBV"], cbv, atol=1e-4)  # matched by z, not by index
    np.testing.assert_allclose(st.unit_map("CBV"), np.round(cbv / 4 * 255) / 255, atol=1e-6)
    assert st.unit_frames().max() <= 1


def test_fake_study_errors(fake_tree, tmp_path):
    root, _, _ = fake_tree
    with pytest.raises(FileNotFoundError, match="frame folder"):
        dicom.load_unitobrain_study(root, "MOL-000")
    with pytest.raises(FileNotFoundError, match="NLR_CBF"):
        dicom.load_unitobrain_study(root, "MOL-999", maps=("CBF",))
    (root / "MOL-999_Registered_Filtered_3mm_20HU" / "Filtered00036.dcm").unlink()
    with pytest.raises(ValueError, match="inconsistent frame counts"):
        dicom.load_unitobrain_study(root, "MOL-999", maps=())
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom file")
    with pytest.raises(ValueError, match="cannot read"):
        dicom.read_dicom(bad)
    with pytest.raises(FileNotFoundError):
        dicom.read_dicom(tmp_path / "missing.dcm")


# ----------------------------------------------------------------- a header that does not describe its pixels
def _mirror_sample(name: str) -> Path:
    """A real UniToBrain sample from the data mirror (``$STUDIES_DATA_MIRROR`` or ``../shared/data``), or skip."""
    base = os.environ.get("STUDIES_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")
    path = Path(base) / "perfusion" / "unitobrain-samples" / name
    if not path.is_file():
        pytest.skip("UniToBrain samples not in the data mirror")
    return path


def _edited(src: Path, dst: Path, **tags) -> Path:
    """Copy DICOM ``src`` to ``dst`` with header attributes (or ``PixelData``) replaced."""
    import pydicom

    ds = pydicom.dcmread(src)
    for key, value in tags.items():
        setattr(ds, key, value(ds) if callable(value) else value)
    ds.save_as(dst)
    return dst


def _third(ds):
    return ds.PixelData[: len(ds.PixelData) // 3]


#: Edits that leave a file readable by GDCM but make it decode to garbage, and the error each must give.
NATIVE_EDITS = {
    "cut_to_a_third": ({"PixelData": _third}, r"pixel data hold \d+ bytes .* too short"),
    "rows_doubled": ({"Rows": lambda ds: ds.Rows * 2}, r"pixel data hold \d+ bytes .* too short"),
    "rows_halved": ({"Rows": lambda ds: ds.Rows // 2}, r"pixel data hold \d+ bytes .* too long"),
    "8_bits_over_16_bit_data": ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, r"8/8 x 1 = \d+ bytes: too long"),
    "bits_allocated_below_stored": ({"BitsAllocated": 8}, "BitsAllocated 8, BitsStored 16, HighBit 15"),
    "high_bit_not_stored_minus_1": ({"HighBit": 11}, "inconsistent DICOM bits fields"),
}


@pytest.fixture
def synthetic_dcm(tmp_path) -> tuple[Path, np.ndarray]:
    """A small native (uncompressed) 16-bit CT slice written with pydicom."""
    arr = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10) * 37
    path = tmp_path / "synthetic.dcm"
    _write(path, arr, 5.0, 1.0, -1024.0, 40, 400, "synthetic")
    return path, arr


def test_synthetic_native_file_reads_back(synthetic_dcm):
    path, arr = synthetic_dcm
    np.testing.assert_array_equal(dicom.read_dicom(path).array, arr.astype(np.float32) - 1024)


@pytest.mark.parametrize("edit", sorted(NATIVE_EDITS))
def test_synthetic_native_header_mismatch_is_refused(synthetic_dcm, tmp_path, edit):
    tags, match = NATIVE_EDITS[edit]
    bad = _edited(synthetic_dcm[0], tmp_path / f"{edit}.dcm", **tags)
    with pytest.raises(ValueError, match=match) as err:
        dicom.read_dicom(bad)
    msg = str(err.value)
    assert str(bad) in msg and "re-copy or re-export the file" in msg


@pytest.mark.parametrize("edit", sorted(NATIVE_EDITS))
def test_real_registered_frame_header_mismatch_is_refused(tmp_path, edit):
    tags, match = NATIVE_EDITS[edit]
    bad = _edited(_mirror_sample("Registered00001.dcm"), tmp_path / f"{edit}.dcm", **tags)
    with pytest.raises(ValueError, match=match) as err:
        dicom.read_dicom(bad)
    assert str(bad) in str(err.value)


def test_physically_truncated_file_is_refused(synthetic_dcm, tmp_path):
    data = synthetic_dcm[0].read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"cut\.dcm: the file is truncated: its pixel data should hold 240 bytes"):
        dicom.read_dicom(cut)
    head = tmp_path / "head.dcm"
    head.write_bytes(data[:200])
    with pytest.raises(ValueError, match=r"cannot read .*head\.dcm as a DICOM image: .* truncated or not DICOM"):
        dicom.read_dicom(head)


@pytest.mark.parametrize(
    "tags, match",
    [
        ({"Rows": 6}, "RLE pixel data hold 2 segment.s. of 120 bytes.*Rows x Columns = 6 x 10 = 60 bytes"),
        ({"Rows": 24}, "Rows x Columns = 24 x 10 = 240 bytes"),
        ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, "BitsAllocated 8/8 = 1 segment"),
    ],
)
def test_synthetic_rle_header_mismatch_is_refused(synthetic_dcm, tmp_path, tags, match):
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(synthetic_dcm[0])
    ds.compress(RLELossless)
    good = tmp_path / "rle.dcm"
    ds.save_as(good)
    np.testing.assert_array_equal(dicom.read_dicom(good).array, synthetic_dcm[1].astype(np.float32) - 1024)
    bad = _edited(good, tmp_path / "rle_bad.dcm", **tags)
    with pytest.raises(ValueError, match=match) as err:
        dicom.read_dicom(bad)
    assert str(bad) in str(err.value)


def _jpeg_dicom(path: Path, arr: np.ndarray) -> Path:
    """An 8-bit baseline-JPEG DICOM (Pillow encodes, pydicom encapsulates), which GDCM decodes."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    _write(path, arr, 0.0, 1.0, 0.0, 128, 256, "jpeg")
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.uint8)).save(buf, format="JPEG", quality=100)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    return path


def test_synthetic_jpeg_rows_mismatch_is_refused(tmp_path):
    arr = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    good = _jpeg_dicom(tmp_path / "jpeg.dcm", arr)
    assert np.abs(dicom.read_dicom(good).array - arr).max() <= 4  # lossy, but the right image
    bad = _edited(good, tmp_path / "jpeg_rows.dcm", Rows=32)
    with pytest.raises(ValueError, match=r"jpeg_rows\.dcm: the JPEG stream holds 16 rows x 16 columns, 1 component"):
        dicom.read_dicom(bad)


@pytest.mark.parametrize(
    "tags, match",
    [
        ({"Rows": 1024}, "JPEG stream holds 512 rows x 512 columns.*declares Rows 1024"),
        ({"Rows": 256}, "declares Rows 256"),
        ({"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}, "component.s. of 16 bits.*BitsAllocated 8"),
        ({"BitsStored": 20}, "inconsistent DICOM bits fields"),
    ],
)
def test_real_jpeg_lossless_header_mismatch_is_refused(tmp_path, tags, match):
    bad = _edited(_mirror_sample("IM-0001-0001-0001.dcm"), tmp_path / "raw_bad.dcm", **tags)
    with pytest.raises(ValueError, match=match) as err:
        dicom.read_dicom(bad)
    assert str(bad) in str(err.value)
