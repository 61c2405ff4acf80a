"""Group metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shortcut_nb.metrics import aggregate_seeds, group_accuracies, mean_std, summarize



# group 0: 3/4 correct, group 1: 1/2, group 2: 2/3, group 3: 1/1; overall 7/10
PREDS = [1, 0, 1, 1, 0, 0, 1, 1, 0, 1]
Y = [1, 0, 0, 1, 0, 1, 1, 1, 1, 1]
G = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]


def test_group_accuracies_hand_values():
    accs = group_accuracies(PREDS, Y, G)
    assert list(accs) == [0, 1, 2, 3]
    assert accs[0] == pytest.approx(0.75)
    assert accs[1] == pytest.approx(0.5)
    assert accs[2] == pytest.approx(2 / 3)
    assert accs[3] == pytest.approx(1.0)


def test_group_accuracies_accepts_tensors():
    accs = group_accuracies(torch.tensor(PREDS), torch.tensor(Y), torch.tensor(G))
    assert accs[2] == pytest.approx(2 / 3)


def test_empty_group_raises_or_nan():
    g = [0, 0, 0, 0, 1, 1, 1, 1, 1, 3]  # group 2 empty
    with pytest.raises(ValueError, match="group 2"):
        group_accuracies(PREDS, Y, g)
    accs = group_accuracies(PREDS, Y, g, require_all=False)
    assert math.isnan(accs[2])
    s = summarize(PREDS, Y, g, require_all=False)
    # wga ignores the empty group: groups 0 (3/4), 1 (3/5), 3 (1/1)
    assert s["wga"] == pytest.approx(0.6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        group_accuracies(PREDS[:-1], Y, G)
    with pytest.raises(ValueError, match="g must lie"):
        group_accuracies(PREDS, Y, [5] * 10)
    with pytest.raises(TypeError, match="integer"):
        group_accuracies(np.full(10, 0.5), Y, G)


def test_summarize_hand_values():
    s = summarize(PREDS, Y, G)
    assert s["groups"] == pytest.approx([0.75, 0.5, 2 / 3, 1.0])
    assert s["avg"] == pytest.approx(0.7)  # plain mean over samples, not over groups
    assert s["wga"] == pytest.approx(0.5)
    assert s["gap"] == pytest.approx(0.2)
    assert s["avg_weighted"] is None
    assert s["n"] == 10


def test_summarize_weighted_average():
    # training proportions 0.1, 0, 0.3, 0.6 -> 0.1*0.75 + 0.3*2/3 + 0.6*1 = 0.875
    s = summarize(PREDS, Y, G, train_group_counts=[10, 0, 30, 60])
    assert s["avg_weighted"] == pytest.approx(0.875)
    assert s["avg"] == pytest.approx(0.7)
    assert s["gap"] == pytest.approx(0.2)  # gap uses the plain average
    s2 = summarize(PREDS, Y, G, train_group_counts={0: 1, 2: 3, 3: 6})
    assert s2["avg_weighted"] == pytest.approx(0.875)
    with pytest.raises(ValueError, match="train_group_counts"):
        summarize(PREDS, Y, G, train_group_counts=[1, 2, 3])


def test_mean_std_sample_std():
    m, sd = mean_std([0.5, 0.7, 0.9])
    assert m == pytest.approx(0.7)
    assert sd == pytest.approx(0.2)  # ddof=1: sqrt((0.04 + 0 + 0.04) / 2)
    assert mean_std([0.3]) == (pytest.approx(0.3), 0.0)
    with pytest.raises(ValueError, match="empty"):
        mean_std([])


def test_aggregate_seeds():
    s1 = summarize(PREDS, Y, G, train_group_counts=[10, 0, 30, 60])
    s2 = summarize([1] * 10, Y, G, train_group_counts=[10, 0, 30, 60])
    # s2: groups 0 -> 2/4, 1 -> 1/2, 2 -> 1, 3 -> 1; avg 0.7; wga 0.5; weighted 0.05+0.3+0.6
    agg = aggregate_seeds([s1, s2])
    assert agg["n_seeds"] == 2
    assert agg["avg"]["mean"] == pytest.approx(0.7)
    assert agg["avg"]["std"] == pytest.approx(0.0)
    assert agg["wga"]["mean"] == pytest.approx(0.5) and agg["wga"]["std"] == pytest.approx(0.0)
    assert agg["gap"]["mean"] == pytest.approx(0.2)
    assert agg["avg_weighted"]["mean"] == pytest.approx((0.875 + 0.95) / 2)
    assert agg["avg_weighted"]["std"] == pytest.approx(np.std([0.875, 0.95], ddof=1))
    assert agg["groups"]["mean"] == pytest.approx([0.625, 0.5, 5 / 6, 1.0])
    assert agg["groups"]["std"][0] == pytest.approx(np.std([0.75, 0.5], ddof=1))
    one = aggregate_seeds([summarize(PREDS, Y, G)])
    assert one["wga"] == {"mean": pytest.approx(0.5), "std": 0.0}
    assert one["avg_weighted"] is None
    with pytest.raises(ValueError, match="empty"):
        aggregate_seeds([])


def test_wga_interval_brackets_the_wga_and_shrinks_with_more_test_images():
    """The bootstrap interval of WGA holds the WGA itself and narrows as each group has more test images."""
    from shortcut_nb.metrics import wga_interval

    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 2000):
        g = np.repeat(np.arange(4), n)
        y = g // 2
        pred = np.where(rng.random(len(g)) < np.array([0.9, 0.6, 0.8, 0.95])[g], y, 1 - y)
        low, high = wga_interval(pred, y, g, n_groups=4, seed=1)
        wga = summarize(pred, y, g)["wga"]
        assert low <= wga <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 5
    assert abs(np.mean(widths[1:]) - 2 * 1.96 * np.sqrt(0.6 * 0.4 / 2000)) < 0.01  # the normal approximation


def test_wga_change_interval_is_paired_and_brackets_the_change():
    """Both models are scored on the same resamples: the same predictions change by exactly 0 on every resample; a
    better model's ΔWGA interval holds the observed ΔWGA and is narrower than the two WGA intervals combined."""
    from shortcut_nb.metrics import wga_change_interval, wga_interval

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(4), 200)
    y = g // 2
    before = np.where(rng.random(len(g)) < np.array([0.9, 0.6, 0.8, 0.95])[g], y, 1 - y)
    after = np.where(rng.random(len(g)) < 0.1, 1 - before, before)  # 10 % of the predictions flipped...
    after[(g == 1) & (before != y)] = y[(g == 1) & (before != y)]  # ...and the worst group's errors fixed
    assert wga_change_interval(before, before, y, g, n_groups=4) == (0.0, 0.0)
    low, high = wga_change_interval(before, after, y, g, n_groups=4, seed=1)
    change = summarize(after, y, g)["wga"] - summarize(before, y, g)["wga"]
    assert low <= change <= high and low > 0
    (b0, b1), (a0, a1) = wga_interval(before, y, g, n_groups=4, seed=1), wga_interval(after, y, g, n_groups=4, seed=1)
    assert high - low < (b1 - b0) + (a1 - a0)
    with pytest.raises(ValueError, match="level"):
        wga_change_interval(before, after, y, g, n_groups=4, level=1.0)


def _explicit_resamples(tests, n_boot, seed):
    """The bootstrap written out: per resample, each test's groups in turn drawn with replacement within the group
    from one generator; every model of a test scored on that test's draw. → (n_boot, S, 4) group accuracies."""
    rng = np.random.default_rng(seed)
    out = np.full((n_boot, sum(len(preds) for preds, _, _ in tests), 4), np.nan)
    for b in range(n_boot):
        s = 0
        for preds, y, g in tests:
            draws = {k: rng.choice(np.flatnonzero(g == k), size=(g == k).sum()) for k in range(4) if (g == k).any()}
            for p in preds:
                correct = (p == y).astype(np.float64)
                for k, idx in draws.items():
                    out[b, s, k] = correct[idx].mean()
                s += 1
    return out


def _percentiles(values, level=0.95):
    tail = (1 - level) / 2  # as the metrics compute it (not exactly 0.025)
    return tuple(np.quantile(values, [tail, 1 - tail]))


def _noisy(y, g, accuracy, rng):
    return np.where(rng.random(len(g)) < np.asarray(accuracy)[g], y, 1 - y)


def test_group_accuracy_interval_is_the_explicit_resample_loop():
    """Paired models share each resample, separate tests are drawn independently, and the interval is the
    statistic's percentiles over the resamples: checked against the loop written out (within-group draws)."""
    from shortcut_nb.metrics import group_accuracy_interval, wga_change_interval, worst_group

    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(4), [30, 8, 12, 40])
    y = g // 2
    heads = [_noisy(y, g, [0.9, 0.5, 0.6, 0.95], rng), _noisy(y, g, [0.8, 0.7, 0.7, 0.9], rng),
             _noisy(y, g, [0.85, 0.75, 0.6, 0.9], rng)]

    def gain(a):
        return np.minimum(worst_group(a[:, 1]), worst_group(a[:, 2])) - worst_group(a[:, 0])

    ref = _percentiles(gain(_explicit_resamples([(heads, y, g)], 200, 7)), level=0.9)
    assert group_accuracy_interval(gain, (heads, y, g), n_groups=4, level=0.9, n_boot=200, seed=7) == ref
    # two test sets of their own (sizes differ, a group missing from one): resampled independently
    g2 = np.repeat(np.array([0, 1, 3]), [20, 5, 25])
    y2 = g2 // 2
    other = _noisy(y2, g2, [0.9, 0.3, 0.0, 0.9], rng)

    def fall(a):
        return np.nanmean(a[:, 0, 1:3], -1) - np.nanmean(a[:, 1, 1:3], -1)

    ref = _percentiles(fall(_explicit_resamples([([heads[0]], y, g), ([other], y2, g2)], 200, 3)))
    assert group_accuracy_interval(fall, ([heads[0]], y, g), ([other], y2, g2), n_groups=4, n_boot=200, seed=3) == ref
    # the ΔWGA interval is this bootstrap of WGA(after) − WGA(before): the same numbers as before the refactor
    ref = _percentiles(np.diff(worst_group(_explicit_resamples([(heads[:2], y, g)], 300, 1)), axis=1)[:, 0])
    assert wga_change_interval(heads[0], heads[1], y, g, n_groups=4, n_boot=300, seed=1) == ref


def test_group_accuracy_interval_pairs_models_on_one_test_and_not_across_tests():
    """A model against itself on one test changes by exactly 0 on every resample; the same predictions given as two
    tests are resampled independently, so their difference spreads around 0."""
    from shortcut_nb.metrics import group_accuracy_interval

    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(4), 100)
    y = g // 2
    pred = _noisy(y, g, [0.9, 0.6, 0.7, 0.95], rng)

    def minority_change(a):
        return a[:, 1, 1:3].mean(-1) - a[:, 0, 1:3].mean(-1)

    assert group_accuracy_interval(minority_change, ([pred, pred], y, g), n_groups=4) == (0.0, 0.0)
    low, high = group_accuracy_interval(minority_change, ([pred], y, g), ([pred], y, g), n_groups=4)
    assert low < -0.03 and high > 0.03


def test_group_accuracy_interval_rejects_bad_input_by_name():
    from shortcut_nb.metrics import group_accuracy_interval

    y = g = np.array([0, 1, 2, 3])
    with pytest.raises(ValueError, match="at least one"):
        group_accuracy_interval(lambda a: a[:, 0, 0], n_groups=4)
    with pytest.raises(ValueError, match="test 1: preds must list"):
        group_accuracy_interval(lambda a: a[:, 0, 0], ([y], y, g), ([], y, g), n_groups=4)
    with pytest.raises(ValueError, match="test 0: no samples"):
        group_accuracy_interval(lambda a: a[:, 0, 0], ([y[:0]], y[:0], g[:0]), n_groups=4)
    with pytest.raises(ValueError, match="statistic must return one value per resample"):
        group_accuracy_interval(lambda a: a[:, 0], ([y], y, g), n_groups=4, n_boot=10)
    with pytest.raises(ValueError, match="same length"):
        group_accuracy_interval(lambda a: a[:, 0, 0], ([y[:3]], y, g), n_groups=4)
