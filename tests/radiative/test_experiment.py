"""Tests of the radiative chapter's glue (``lib.radiative.experiment``).

References are independent of the code under test: the P1 solver itself for the rotation map (a rotated
density is simulated afresh), closed forms for the noise statistics and the crossing level, scikit-learn
for R², hand-made cases for the scores.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score as sk_r2

from lib.radiative import dataset as rtd
from lib.radiative import experiment as ex
from lib.radiative.p1 import EDGES, rotate_density, simulate
from lib.radiative.vnet import AuthorsVNet


# ----------------------------------------------------------------------------- splits
def test_split_indices_disjoint_and_sized():
    sp = ex.split_indices(100, seed=3)
    assert sp.sizes() == (70, 20, 10)
    allidx = np.concatenate([sp.train, sp.val, sp.test])
    assert sorted(allidx) == list(range(100))
    sp2 = ex.split_indices(100, seed=3, n_test=40, val_fraction=0.1)
    assert sp2.sizes() == (50, 10, 40)
    assert not set(sp2.test) & set(sp2.train)
    with pytest.raises(ValueError, match="leaves"):
        ex.split_indices(10, seed=0, n_test=9)
    with pytest.raises(ValueError, match="at least 3"):
        ex.split_indices(2, seed=0)


# ----------------------------------------------------------------------------- rotations (checked by simulating)
def _inputs48(rho: np.ndarray, n_steps: int) -> np.ndarray:
    sig = np.stack([simulate(rho, e, n_steps=n_steps).signals for e in EDGES], axis=1)
    return rtd.assemble_inputs(sig, np.arange(n_steps))


def test_rotated_inputs_equal_simulation_of_rotated_density():
    rng = np.random.default_rng(4)
    rho = rng.uniform(1, 10, (2, 12, 12))
    x = _inputs48(rho, 25)
    x_rot_sim = _inputs48(rotate_density(rho), 25)
    np.testing.assert_allclose(ex.rotate_inputs(x), x_rot_sim, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ex.rotate_inputs(x, 3), _inputs48(rotate_density(rho, 3), 25), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ex.rotate_inputs(x, 4), x)
    with pytest.raises(ValueError, match="48"):
        ex.rotate_inputs(x[:, :24])


def test_augment_rotations_keeps_origin():
    x = np.arange(3 * 48 * 2 * 4, dtype=np.float32).reshape(3, 48, 2, 4)
    rho = np.arange(3 * 4 * 4, dtype=float).reshape(3, 4, 4)
    xa, ra, origin = ex.augment_rotations(x, rho, np.array([2, 0]))
    assert xa.shape == (8, 48, 2, 4) and ra.shape == (8, 4, 4)
    assert list(origin) == [2, 0] * 4
    # y-up rows: a counter-clockwise turn of the picture is a clockwise np.rot90 of the array
    np.testing.assert_array_equal(ra[2], np.rot90(rho[2], -1))
    np.testing.assert_array_equal(xa[0], x[2])


# ----------------------------------------------------------------------------- inputs and noise
def _raw(n=6, size=8, seed=0):
    rng = np.random.default_rng(seed)
    base = np.tile(np.array([8.575, 0.5, 5.0], np.float32), 16)[None, :, None, None]
    return (base * (1 + 0.01 * rng.standard_normal((n, 48, size, size)))).astype(np.float32)


def test_pipeline_transform_matches_training_inputs_and_slope():
    raw = _raw()
    pipe = ex.InputPipeline(raw, np.arange(4))
    for nc in (48, 24, 12):
        np.testing.assert_allclose(pipe.transform(raw, nc), pipe.inputs(nc), atol=1e-5)
    # slope of the affine map, by finite differences
    d = np.zeros_like(raw)
    d[:, 5] = 1e-2
    slope = (pipe.transform(raw + d) - pipe.transform(raw))[:, 5] / 1e-2
    np.testing.assert_allclose(slope, pipe.raw_scale()[0, 5, 0, 0], rtol=1e-2)
    train_part = pipe.inputs(48)[:4]
    assert abs(float(train_part.mean())) < 1e-4  # standardised with the training rows


def test_add_relative_noise_statistics():
    rng = np.random.default_rng(0)
    x = np.full((200, 48, 8, 8), 3.0, np.float32)
    noisy = ex.add_relative_noise(x, 0.02, rng)
    rel = noisy / x - 1
    assert abs(rel.std() - 0.02) < 2e-4 and abs(rel.mean()) < 2e-4
    np.testing.assert_array_equal(ex.add_relative_noise(x, 0.0, rng), x)
    with pytest.raises(ValueError):
        ex.add_relative_noise(x, -0.1, rng)


def test_noise_augment_adds_relative_noise_on_raw_scale():
    raw = _raw(n=2000, size=4)
    pipe = ex.InputPipeline(raw, np.arange(1000))
    aug = ex.NoiseAugment(pipe, 48, 0.03, seed=0)
    x = torch.from_numpy(pipe.inputs(48))
    xn, _ = aug(x, x[:, :1])
    d_raw = (xn - x).numpy() / pipe.raw_scale(48)
    rel = d_raw / raw
    # levels uniform in [0, s]: rms of the relative noise is s / sqrt(3)
    assert rel.std() == pytest.approx(0.03 / math.sqrt(3), rel=0.03)
    with pytest.raises(ValueError, match="sigma_max"):
        ex.NoiseAugment(pipe, 48, 0.0, seed=0)


# ----------------------------------------------------------------------------- metrics helpers
def test_batch_r2_equals_sklearn():
    rng = np.random.default_rng(1)
    t = rng.random((5, 1, 8, 8)).astype(np.float32)
    p = t + 0.1 * rng.standard_normal(t.shape).astype(np.float32)
    assert ex.batch_r2(torch.from_numpy(p), torch.from_numpy(t)) == pytest.approx(sk_r2(t.ravel(), p.ravel()), rel=1e-5)


def test_level_where_below():
    assert ex.level_where_below([0, 0.01, 0.02], [0.9, 0.7, 0.3]) == pytest.approx(0.015)
    assert ex.level_where_below([0, 0.01], [0.4, 0.1]) == 0.0
    assert math.isnan(ex.level_where_below([0, 0.01], [0.9, 0.8]))
    with pytest.raises(ValueError, match="increasing"):
        ex.level_where_below([0.01, 0.0], [0.9, 0.1])


def test_obstacle_labels_and_severe_score():
    lab = ex.obstacle_labels(np.array([0.15, 0.3, 0.55, 0.85, 0.05]))
    np.testing.assert_array_equal(lab, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    p = np.array([[0.9, 0.1, 0.2, 0.1], [0.6, 0.7, 0.1, 0.1], [0.1, 0.1, 0.8, 0.3], [0.2, 0.1, 0.1, 0.4]])
    assert ex.severe_score(t, p) == 50.0  # two samples have every label right


def test_read_speed_record(tmp_path):
    assert ex.read_speed_record(tmp_path / "none.json") is None
    p = tmp_path / "rec.json"
    p.write_text(json.dumps({"ratio": 150.0, "machine": "m", "date": "d", "grid": 64, "reference_seconds": 19.3,
                             "ours_seconds": 0.13}))
    assert ex.read_speed_record(p)["ratio"] == 150.0
    p.write_text(json.dumps({"ratio": 150.0}))
    with pytest.raises(ValueError, match="lacks"):
        ex.read_speed_record(p)


def test_speed_sentence_names_place_clock_and_batch():
    rec = {"ratio": 149.2, "machine": "vm (AMD EPYC)", "date": "2026-12-01 23:46 UTC", "grid": 64,
           "reference_seconds": 28.548, "ours_seconds": 0.1914, "batch": 64, "ours_seconds_unbatched": 0.1989,
           "clock": "cpu"}
    s = ex.speed_sentence(rec)
    assert s == ("Measured side by side with the original program on vm (AMD EPYC) (2026-12-01 23:46 UTC; one thread "
                 "each; CPU time), one N = 64 simulation took 28.5 s in the original program and 0.191 s in ours "
                 "(amortised over a batch of 64; 0.199 s alone): a ratio of 149.")
    s2 = ex.speed_sentence({**rec, "threads": 2, "backend": "numba", "batch": 1, "clock": "wall"})
    assert "2 thread(s), our numba backend; wall time" in s2 and "amortised" not in s2
    s3 = ex.speed_sentence({**rec, "parallel_threads": 2, "ours_wall_seconds_parallel": 0.0351, "ratio_parallel": 813.3})
    assert s3.endswith("Batched on 2 threads, ours took 0.035 s of wall time per simulation (the original program "
                       "forces one thread): a throughput ratio of 813.")


# ----------------------------------------------------------------------------- training loop on a learnable toy problem
def test_fit_map_model_learns_a_smooth_map():
    rng = np.random.default_rng(0)
    n = 64
    x = rng.standard_normal((n, 2, 16, 16)).astype(np.float32)
    k = np.ones((3, 3)) / 9
    from scipy.signal import convolve2d

    y = np.stack([0.5 + 0.3 * np.tanh(convolve2d(xi[0], k, mode="same")) for xi in x])[:, None].astype(np.float32)
    sp = ex.split_indices(n, seed=0)
    torch.manual_seed(0)
    res, _ = ex.fit_map_model(AuthorsVNet(2, 4, levels=3, kernel_size=3, keras_bn=False), (x[sp.train], y[sp.train]),
                              (x[sp.val], y[sp.val]), epochs=25, batch_size=8, lr=3e-3, seed=0, device="cpu")
    sc = ex.evaluate_maps(res.model, x[sp.test], y[sp.test], device="cpu")
    mean_r2 = sk_r2(y[sp.test].ravel(), np.full(y[sp.test].size, y[sp.train].mean()))
    assert sc.overall["r2"] > 0.5 > mean_r2 + 0.4  # a network that learned nothing scores about 0
    assert sc.pred.shape == (len(sp.test), 16, 16)
    assert set(sc.per_map) >= {"r2", "relative_l2", "ssim", "psnr", "dice_loss"}


# ----------------------------------------------------------------------------- learning-rate schedules
def test_fit_map_model_steps_the_schedule_per_optimiser_step():
    """One-cycle per optimiser step: the lr logged after epoch 1 of 2 is the peak's factor at the middle step."""
    from lib.core.schedules import lr_factor

    rng = np.random.default_rng(0)
    x, y = rng.random((16, 2, 8, 8), dtype=np.float32), rng.random((16, 1, 8, 8), dtype=np.float32)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 1, 1), torch.nn.Sigmoid())
    res, _ = ex.fit_map_model(model, (x, y), (x[:4], y[:4]), epochs=2, batch_size=4, lr=0.01, seed=0, device="cpu",
                              schedule="onecycle")
    assert res.history["lr"].tolist() == [0.01 * lr_factor("onecycle", 4, 8), 0.01 * lr_factor("onecycle", 8, 8)]
    with pytest.raises(ValueError, match="schedule must be one of"):
        ex.fit_map_model(model, (x, y), (x[:4], y[:4]), epochs=1, batch_size=4, lr=0.01, seed=0, device="cpu",
                         schedule="step")


def test_fit_map_model_follows_the_schedule():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 2, 8, 8)).astype(np.float32)
    y = np.full((24, 1, 8, 8), 0.4, np.float32)
    net = AuthorsVNet(2, 2, levels=2, kernel_size=3, keras_bn=False)
    res, _ = ex.fit_map_model(net, (x[:16], y[:16]), (x[16:], y[16:]), epochs=4, batch_size=4, lr=1e-2, seed=0,
                              device="cpu", schedule="cosine")
    lrs = res.history["lr"].to_numpy()  # recorded after each epoch: 4 steps per epoch, 16 in all
    np.testing.assert_allclose(lrs, [1e-2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)], atol=1e-12)
    with pytest.raises(ValueError, match="schedule must be one of"):
        ex.fit_map_model(net, (x[:16], y[:16]), (x[16:], y[16:]), epochs=1, batch_size=4, lr=1e-2, seed=0,
                         device="cpu", schedule="warm")


# ----------------------------------------------------------------------------- GPU throughput record
def _gpu_record(**over):
    rec = {"device_name": "NVIDIA H200", "grid": 64, "steps": 383, "batch": 256, "seconds_per_simulation": 0.002,
           "simulations_per_second": 500.0, "torch_version": "2.13.0", "cuda_version": "12.8",
           "date": "2026-12-04 16:02 UTC", "machine": "box (x86_64)", "notes": "n"}
    rec.update(over)
    return rec


def test_read_gpu_record(tmp_path):
    assert ex.read_gpu_record(tmp_path / "absent.json") is None
    assert ex.read_gpu_record("") is None
    p = tmp_path / "gpu.json"
    p.write_text(json.dumps(_gpu_record()))
    assert ex.read_gpu_record(p)["simulations_per_second"] == 500.0
    for bad, match in (({"batch": 0}, "bad batch"), ({"seconds_per_simulation": float("nan")}, "bad seconds"),
                       ({"simulations_per_second": 250.0}, "is not"), ({"grid": True}, "bad grid")):
        p.write_text(json.dumps(_gpu_record(**bad)))
        with pytest.raises(ValueError, match=match):
            ex.read_gpu_record(p)
    rec = _gpu_record()
    del rec["cuda_version"]
    p.write_text(json.dumps(rec))
    with pytest.raises(ValueError, match="cuda_version"):
        ex.read_gpu_record(p)


def test_gpu_sentence_from_record_and_without(tmp_path):
    p = tmp_path / "gpu.json"
    p.write_text(json.dumps(_gpu_record()))
    s = ex.gpu_sentence(ex.read_gpu_record(p))
    assert s == ("On one NVIDIA H200 GPU (measured 2026-12-04 on box (x86_64); torch 2.13.0, CUDA 12.8), the torch "
                 "backend runs 500 N = 64 simulations (383 steps) per second at batch 256, 2.00 ms of wall time each.")
    s2 = ex.gpu_sentence(_gpu_record(gpu_over_cpu=12.34, cpu_threads=16, simulations_per_second=1234.5,
                                     seconds_per_simulation=1 / 1234.5))
    assert "runs 1,234 N = 64" in s2 or "runs 1,235 N = 64" in s2
    assert s2.endswith(": 12.3 times the throughput of the fused Numba kernel on 16 CPU thread(s) of the same machine.")
    s3 = ex.gpu_sentence(_gpu_record(gpu_over_cpu=0.86, cpu_threads=16))
    assert s3.endswith(", slower than the fused Numba kernel on 16 CPU thread(s) of the same machine (0.86 times "
                       "its throughput): at this grid size the GPU does not pay.")
    none = ex.gpu_sentence(ex.read_gpu_record(tmp_path / "absent.json"))
    assert none.startswith("No GPU measurement has been recorded") and "GPU throughput" in none


def test_pipeline_standardisation_equals_standardise_by_train():
    raw = _raw(n=10, size=8, seed=3)
    pipe = ex.InputPipeline(raw, np.array([0, 2, 3, 5, 7, 9]))
    ref, st = rtd.standardise_by_train(rtd.normalise_inputs(raw), np.array([0, 2, 3, 5, 7, 9]))
    np.testing.assert_allclose(pipe.inputs(48), ref, atol=2e-4)
    np.testing.assert_allclose(pipe.stats(48)["std"], st["std"], rtol=1e-4)
    np.testing.assert_allclose(pipe.stats(48)["mean"], st["mean"], atol=1e-6)


def test_committed_gpu_record_is_quotable():
    # the record the chapter quotes (parameters/radiative/*.yaml: gpu_record) must pass the reader's checks
    rec = ex.read_gpu_record("benchmarks/radiative_solver_gpu_record.json")
    assert rec is not None and rec["grid"] == 64 and rec["batch"] == 256
    assert ex.gpu_sentence(rec).startswith("On one NVIDIA H200 GPU (measured 2026-12-04")


def test_bump_seed_table_and_spread_text():
    def run(k, r2s, score):
        return ex.BumpRun(np.zeros((2, 3)), np.zeros((2, 3)), k, list(r2s), {"score": score}, 8, 2, 10, None, 0.0)

    runs = [run(0.98, (0.9, 0.95, 1.0), 88.0), run(0.96, (0.8, 0.9, 1.0), 92.0), run(0.97, (0.7, 0.8, 0.9), 90.0)]
    t = ex.bump_seed_table(runs, [0, 1, 2])
    assert list(t.index) == [0, 1, 2]
    np.testing.assert_allclose(t["Keras R² (%)"], [98.0, 96.0, 97.0])
    np.testing.assert_allclose(t["mean per-target R²"], [0.95, 0.9, 0.8])
    # mean 90, sample SD 2 (ddof=1) of the scores 88, 92, 90
    assert ex.bump_spread_text(t) == (" (means of 3 trainings; SD 1.00 and 2.0 points, custom score per training "
                                      "88.0–92.0 %)")
    assert ex.bump_spread_text(t.iloc[:1]) == " (one training)"
    with pytest.raises(ValueError, match="one seed per run"):
        ex.bump_seed_table(runs, [0, 1])


def test_bump_metrics_and_verdict_from_the_seed_table():
    def run(k, score, mean_pred):
        return ex.BumpRun(np.zeros((2, 3)), np.zeros((2, 3)), k, [0.9, 0.9, 0.9], {"score": score}, 80, 20, 123,
                          None, 0.0, mean_pred)

    runs = [run(0.96, 84.0, 0.10), run(0.98, 88.0, 0.20), run(0.97, 86.0, 0.00)]
    m = ex.bump_metrics(runs, ex.bump_seed_table(runs, [0, 1, 2]))
    assert m["keras_r2_pct"] == pytest.approx(97.0) and m["keras_r2"] == pytest.approx(0.97)
    assert m["score"] == pytest.approx(86.0) and m["score_sd"] == pytest.approx(2.0) and m["score_min"] == 84.0
    assert m["keras_r2_mean_predictor_pct"] == pytest.approx(10.0)
    assert (m["n_seeds"], m["n_train"], m["n_test"], m["params"]) == (3, 80, 20, 123)
    assert "score_sd" not in ex.bump_metrics(runs[:1], ex.bump_seed_table(runs[:1], [0]))
    # 97 % > 95 %; 86 % is 4 points short of 90 %, within 2 SD (4.0): the sentence says so
    t = ex.bump_seed_table(runs, [0, 1, 2])
    assert ex.bump_verdict(t) == ("above the goal of 95 % (by 2.0 points) for the Keras R² and below the goal of "
                                  "90 % (by 4.0 points) for the custom score, a gap within two SDs of the spread "
                                  "between trainings (2.0 points)")
    assert ex.bump_verdict(t, score_goal=95).endswith("below the goal of 95 % (by 9.0 points) for the custom score")
    assert "within the goal of 86 %" in ex.bump_verdict(t, score_goal=86)


def test_fit_and_score_is_seeded_and_scores_the_test_maps():
    rng = np.random.default_rng(1)
    x, y = rng.random((12, 2, 8, 8), dtype=np.float32), rng.random((12, 1, 8, 8), dtype=np.float32) * 0.5 + 0.2
    data = ((x[:8], y[:8]), (x[8:10], y[8:10]), x[10:])
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the same initial weights; the seed then fixes the order of the batches
        model = torch.nn.Sequential(torch.nn.Conv2d(2, 1, 1), torch.nn.Sigmoid())
        runs.append(ex.fit_and_score(model, data, y[10:, 0], epochs=2, batch_size=4, lr=0.01, seed=3, device="cpu"))
    (res, sec, sc), (res2, _, sc2) = runs
    assert sec > 0 and len(res.history) == 2 and sc.pred.shape == (2, 8, 8)
    assert sc.overall == sc2.overall  # the seed fixes the initial weights and the order
    np.testing.assert_array_equal(sc.pred, ex.predict_maps(res.model, x[10:], device="cpu"))
