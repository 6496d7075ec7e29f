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
