"""The PGNAA chapter at the ci profile: runs end to end and its limits are sane.

At ci size the networks train for a dozen steps, so only the likelihood / template
baselines (which need no training) are checked against thresholds; the CNN numbers must
merely be valid accuracies.
"""

import math

from lib.runtime.run import run_study


def test_pgnaa_ci(tmp_path):
    m = run_study("pgnaa", "ci", out=tmp_path).metrics
    for k, v in m.items():
        assert math.isfinite(v), k
    # the generator produces 12 distinct materials: the likelihood classifier separates them at the paper's k
    assert m["expI_lik_acc"] >= 0.95
    assert m["expI_likbin_acc"] >= 0.9
    assert 0.5 < m["expI_ncc_acc"] <= 1.0 and 0.5 < m["expI_chi2_acc"] <= 1.0
    # a 1 % pairwise error needs between 10^2 and 10^6 counts for the closest pair
    assert 1e2 < m["expI_k_for_1pct_pairwise"] < 1e6
    for key in ("expI_cnn_acc", "discard_acc_all", "discard_acc_reduced", "expII_cnn_acc", "expIIIb_cnn_acc",
                "table2_best_acc", "nist_cnn_acc_kmax"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["expI_params"] > 1000
    # alloys: the limit at the paper's 500,000 counts
    assert m["expIIIa_lik_acc"] >= 0.95 and m["expIIIb_lik_acc"] >= 0.9
    # real NIST spectra (or the fallback): the mixture likelihood is far above chance (1/13) at 3000 counts
    assert m["nist_lik_acc_kmax"] > 0.5
    assert m["nist_n_test_spectra"] >= 10
    assert m["rsm3_seconds_128"] < 5.0
    assert (tmp_path / "figures").is_dir()
