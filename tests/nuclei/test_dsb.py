"""Nuclei readers on the three layouts (fixtures written here), the seed's split and preprocessing."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib.nuclei import dsb as N

MIRROR = Path(os.environ.get("STUDIES_DATA_MIRROR", "/nonexistent")) / "nuclei" / "dsb2018"
needs_mirror = pytest.mark.skipif(not (MIRROR / "manifest.csv").is_file(), reason="DSB 2018 mirror not available")


def _sample(rng, h=20, w=24):
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    lab = np.zeros((h, w), np.uint16)
    lab[2:6, 2:7] = 1
    lab[10:15, 12:18] = 2
    return img, lab


def write_kaggle(root, rng, ids=("a", "b")):
    for i in ids:
        img, lab = _sample(rng)
        (root / i / "images").mkdir(parents=True)
        (root / i / "masks").mkdir()
        Image.fromarray(np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])).save(root / i / "images" / f"{i}.png")
        for k in (1, 2):
            Image.fromarray(((lab == k) * 255).astype(np.uint8)).save(root / i / "masks" / f"m{k}.png")
    return root


def write_labels(root, rng, ids=("a", "b"), folder="labels"):
    (root / "images").mkdir(parents=True)
    (root / folder).mkdir()
    out = {}
    for i in ids:
        img, lab = _sample(rng)
        Image.fromarray(img).save(root / "images" / f"{i}.png")
        Image.fromarray(lab).save(root / folder / f"{i}.png")
        out[i] = (img, lab)
    return out


def test_kaggle_layout(tmp_path):
    rng = np.random.default_rng(0)
    write_kaggle(tmp_path, rng)
    assert N.detect_layout(tmp_path) == "kaggle"
    recs = N.read_dataset(tmp_path)
    assert [r.id for r in recs] == ["a", "b"]
    assert recs[0].image.shape == (20, 24, 3) and recs[0].image.dtype == np.uint8
    assert set(np.unique(recs[0].labels)) == {0, 1, 2} and (recs[0].labels == 2).sum() == 30


def test_labels_layout_roundtrip(tmp_path):
    data = write_labels(tmp_path, np.random.default_rng(1))
    assert N.detect_layout(tmp_path) == "labels"
    recs = N.read_dataset(tmp_path)
    for r in recs:
        np.testing.assert_array_equal(r.image, data[r.id][0])
        np.testing.assert_array_equal(r.labels, data[r.id][1])


def test_processed_layout_labels_components(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img, lab = _sample(rng)
    Image.fromarray(img).save(tmp_path / "images" / "x.jpg", quality=95)
    Image.fromarray(((lab > 0) * 255).astype(np.uint8)).save(tmp_path / "masks" / "x.jpg", quality=95)
    assert N.detect_layout(tmp_path) == "processed"
    (r,) = N.read_dataset(tmp_path)
    assert r.labels.max() == 2
    assert abs(int((r.labels > 0).sum()) - int((lab > 0).sum())) <= 4  # JPEG ringing


def test_mismatch_errors(tmp_path):
    write_labels(tmp_path, np.random.default_rng(3))
    (tmp_path / "labels" / "b.png").unlink()
    with pytest.raises(ValueError, match="without a mask"):
        N.list_samples(tmp_path)


def test_size_mismatch_and_unreadable(tmp_path):
    write_labels(tmp_path, np.random.default_rng(4))
    Image.fromarray(np.zeros((5, 5), np.uint16)).save(tmp_path / "labels" / "a.png")
    with pytest.raises(ValueError, match="same height and width"):
        N.read_dataset(tmp_path, ids=["a"])
    (tmp_path / "images" / "b.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode"):
        N.read_dataset(tmp_path, ids=["b"])
    with pytest.raises(FileNotFoundError, match="no known nuclei layout"):
        N.detect_layout(tmp_path / "images")


def _png_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A 100-byte PNG whose header declares ``width x height`` grey pixels (4e8 > Pillow's 1.8e8 limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("reader, what", [(N.read_image, "image"), (N.read_label_map, "label map"),
                                          (N._read_binary, "mask")])
def test_decompression_bomb_names_file_and_fix(tmp_path, reader, what):
    bomb = _png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ValueError) as err:
        reader(bomb)
    msg = str(err.value)
    assert msg.startswith(f"refusing to decode {what} {bomb}: its header declares more pixels than Pillow's")
    assert "400000000 pixels" in msg and "replace it with the original file" in msg
    assert "PIL.Image.MAX_IMAGE_PIXELS" in msg


def test_decompression_bomb_in_a_dataset_is_a_value_error(tmp_path):
    write_labels(tmp_path, np.random.default_rng(6))
    _png_bomb(tmp_path / "labels" / "a.png")
    with pytest.raises(ValueError, match=r"label map .*labels/a\.png: its header declares more pixels"):
        N.read_dataset(tmp_path, ids=["a"])


def test_grey_alpha_label_map_drops_alpha(tmp_path):
    _, lab = _sample(np.random.default_rng(7))
    la = np.dstack([lab.astype(np.uint8), np.where(lab > 0, 255, 0).astype(np.uint8)])  # background transparent
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = N.read_label_map(tmp_path / "la.png")
    assert out.shape == lab.shape and out.dtype == np.int32
    np.testing.assert_array_equal(out, lab)
    # the Kaggle binary masks go through convert("L"): 2-D as well
    Image.fromarray(np.dstack([la[..., 0] * 100, la[..., 1]]), mode="LA").save(tmp_path / "mask.png")
    assert N.read_kaggle_masks([tmp_path / "mask.png"]).shape == lab.shape


def test_grey_alpha_label_map_with_hidden_labels_is_refused(tmp_path):
    _, lab = _sample(np.random.default_rng(8))
    la = np.dstack([lab.astype(np.uint8), np.full(lab.shape, 255, np.uint8)])
    la[3, 4, 1] = 0  # a labelled pixel made fully transparent
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    with pytest.raises(ValueError, match=r"la\.png \(mode LA, grey \+ alpha\) has 1 fully transparent pixel.*"
                                         r"row 3, column 4: label 1.*without an alpha channel"):
        N.read_label_map(tmp_path / "la.png")


def test_multiband_label_map_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 5, 4), np.uint8), mode="CMYK").save(tmp_path / "cmyk.tif")
    with pytest.raises(ValueError, match=r"cmyk\.tif has 4 bands \(mode CMYK\); expected a single-channel"):
        N.read_label_map(tmp_path / "cmyk.tif")


def test_kaggle_without_masks(tmp_path):
    write_kaggle(tmp_path, np.random.default_rng(5), ids=("a",))
    for p in (tmp_path / "a" / "masks").iterdir():
        p.unlink()
    (tmp_path / "a" / "masks").rmdir()
    with pytest.raises(ValueError, match="no masks"):
        N.list_samples(tmp_path, "kaggle")


def test_seed_split_sizes_and_membership():
    ids = [f"{i:04d}" for i in range(670)]
    tr, va, te = N.seed_split(ids)
    assert (len(tr), len(va), len(te)) == (402, 134, 134)
    assert not (set(tr) & set(va)) and not (set(tr) & set(te)) and not (set(va) & set(te))
    assert N.seed_split(ids) == (tr, va, te)
    from sklearn.model_selection import train_test_split

    a, b = train_test_split(ids, test_size=134, random_state=42)
    assert b == va and train_test_split(a, test_size=134, random_state=42)[1] == te
    with pytest.raises(ValueError, match="sorted"):
        N.seed_split(ids[::-1])


def test_preprocessing_matches_half_pixel_bilinear():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, 2:] = 200
    x = N.preprocess_image(img, size=2)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], [[0, 200 / 255], [0, 200 / 255]], atol=1e-6)
    up = N.resize_bilinear(np.array([[0.0, 1.0]]), (1, 4))
    np.testing.assert_allclose(up, [[0, 0.25, 0.75, 1]])  # OpenCV INTER_LINEAR half-pixel centres
    soft, binary = N.preprocess_mask(np.array([[0, 3], [0, 3]]), 4)
    # half-pixel source columns -0.25, 0.25, 0.75, 1.25 -> weights 0, 1/4, 3/4, 1 of the nucleus column,
    # rounded to uint8 like OpenCV: 0, 64, 191, 255
    np.testing.assert_allclose(soft, np.tile([0, 64 / 255, 191 / 255, 1.0], (4, 1)), atol=1e-6)
    np.testing.assert_array_equal(binary, np.tile([False, False, True, True], (4, 1)))
    assert N.resize_labels(np.arange(16).reshape(4, 4), 2).tolist() == [[5, 7], [13, 15]]


@needs_mirror
def test_real_split_and_reader():
    split = N.dsb_split_ids(MIRROR)
    assert [len(split[k]) for k in ("train", "valid", "test")] == [402, 134, 134]
    ids = split["test"][:3]
    arr = N.load_arrays(MIRROR, ids, size=64)
    assert arr.images.shape == (3, 3, 64, 64) and arr.masks.shape == (3, 64, 64)
    assert set(arr.modality) <= set(N.MODALITIES)
    man = {r["image_id"]: r for r in N.read_dsb_index(MIRROR)}
    (rec,) = N.read_dataset(MIRROR, "labels", labels="labels_original", ids=ids[:1])
    assert rec.labels.max() == int(man[ids[0]]["n_nuclei_original"])
    assert rec.image.shape[:2] == (int(man[ids[0]]["height"]), int(man[ids[0]]["width"]))


@needs_mirror
def test_fixed_labels_and_modality_view():
    removed = [r["image_id"] for r in N.read_dsb_index(MIRROR) if r["in_fixed_set"] == "0"]
    keep = [r["image_id"] for r in N.read_dsb_index(MIRROR) if r["modality_guess"] == "brightfield"][:2]
    arr = N.load_arrays(MIRROR, removed[:1] + keep, size=32, label_set="fixed")
    assert arr.ids == keep
    assert len(arr.by_modality("brightfield")) == 2 and len(arr.by_modality("fluorescence")) == 0
    with pytest.raises(ValueError, match="modality"):
        arr.by_modality("xray")


def test_mirror_root_unavailable_raises(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIES_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("STUDIES_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="dsb2018"):
        N.mirror_root()


def test_mirror_root_does_not_hide_checksum_errors(monkeypatch):
    from lib.core import registry

    def corrupt(name):
        raise registry.ChecksumError("images/x.png: sha256 differs")

    monkeypatch.setattr(registry, "fetch", corrupt)
    with pytest.raises(registry.ChecksumError, match="sha256"):
        N.mirror_root()


@needs_mirror
def test_mirror_root_found():
    assert (N.mirror_root() / "manifest.csv").is_file()
