"""The nuclei chapter at the ci profile (synthetic data, tiny networks)."""

import math

from lib.runtime.run import run_study


def test_nuclei_ci(tmp_path):
    r = run_study("nuclei", "ci", out=tmp_path)
    m = r.metrics
    assert m["mru_params_seed"] == 7_244_774
    assert (m["n_train"], m["n_valid"], m["n_test"]) == (30, 9, 9)  # int(0.2 * 48) = 9 per held-out split
    for k, v in m.items():
        assert math.isfinite(v), k
    for method in ("otsu", "mru", "unet"):
        for metric in ("accuracy", "f1", "jaccard", "recall", "precision"):
            for agg in ("pooled", "mean"):
                assert 0.0 <= m[f"{method}_{metric}_{agg}"] <= 1.0
    # Otsu is strong on the synthetic fluorescence images, and the generator is not trivial
    assert 0.7 < m["otsu_f1_pooled"] < 0.99
    # after 6 short epochs MultiResUNet (with BN re-estimation) finds nuclei, beats an empty prediction
    assert m["mru_f1_pooled"] > 0.2
    assert m["mru_jaccard_pooled"] <= m["mru_f1_pooled"]
    assert m["seed_f1_from_pr"] > 0.82  # the seed's P/R imply a higher pooled F1 than it reports
    assert 0.0 <= m["otsu_cc_dsb"] <= m["otsu_cc_ap50"] <= 1.0
    assert (tmp_path / "figures").is_dir()
