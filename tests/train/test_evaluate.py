"""Evaluation: baselines on clear images, zoom, reports, the command."""

import argparse

import numpy as np
import pytest

from napari_samed2.model import build_model, small_config
from napari_samed2.synthetic import Degradation, nuclei_image, nuclei_volume
from napari_samed2.train.baselines import random_walker_from_clicks, watershed_from_clicks
from napari_samed2.train.commands import add_evaluate_parser, run_evaluate
from napari_samed2.train.eval_report import MODEL, WATERSHED, ZOOMED, EvaluationReport, ObjectScore
from napari_samed2.train.evaluate import evaluate_data
from napari_samed2.train.metrics import dice, equivalent_diameter

CLEAR = Degradation(blur_sigma=0.5, illumination=0.0, photons=0, read_noise=0.0, background=0.05)


def _discs():
    yy, xx = np.mgrid[:96, :96]
    labels = np.zeros((96, 96), np.int32)
    labels[(yy - 30) ** 2 + (xx - 30) ** 2 <= 12**2] = 1
    labels[(yy - 60) ** 2 + (xx - 66) ** 2 <= 16**2] = 2
    image = np.where(labels > 0, 0.9, 0.1).astype(np.float32)
    image += np.random.default_rng(0).normal(0, 0.02, image.shape).astype(np.float32)
    return image, labels, {1: (30, 30), 2: (60, 66)}


def test_baselines_segment_clear_discs_from_one_click_each():
    image, labels, clicks = _discs()
    for function in (watershed_from_clicks, random_walker_from_clicks):
        masks = function(image, clicks)
        assert set(masks) == {1, 2}
        for obj_id in clicks:
            assert dice(masks[obj_id], labels == obj_id) > 0.9, function.__name__


def test_watershed_follows_a_clicked_nucleus_through_a_volume():
    sample = nuclei_volume(shape=(12, 64, 64), seed=2, degradation=CLEAR)
    obj_id = sample.object_ids[0]
    mask = sample.labels == obj_id
    z = int(np.argmax(mask.sum(axis=(1, 2))))
    y, x = np.argwhere(mask[z]).mean(axis=0).astype(int)
    if not mask[z, y, x]:
        y, x = np.argwhere(mask[z])[0]
    result = watershed_from_clicks(sample.image.astype(np.float32) / 4000, {obj_id: (z, y, x)})
    assert dice(result[obj_id], mask) > 0.6
    assert result[obj_id].any(axis=(1, 2)).sum() > 1  # not only the clicked slice


def test_baselines_refuse_clicks_of_the_wrong_dimension():
    image, _, _ = _discs()
    with pytest.raises(ValueError, match="2 coordinates"):
        watershed_from_clicks(image, {1: (1, 2, 3)})


def test_report_tables_show_means_and_margins():
    scores = [
        ObjectScore("2d", "nuclei", 0, 1, MODEL, 0.9, 15.0),
        ObjectScore("2d", "nuclei", 0, 2, MODEL, 0.7, 30.0),
        ObjectScore("2d", "nuclei", 0, 1, WATERSHED, 0.6, 15.0),
        ObjectScore("2d", "nuclei", 0, 2, WATERSHED, 0.6, 30.0),
    ]
    report = EvaluationReport("test-model", scores)
    assert report.summary() == {"2d": {MODEL: pytest.approx(0.8), WATERSHED: pytest.approx(0.6)}}
    text = report.to_markdown()
    assert "| nuclei | 2 | 0.800 | 0.600 |" in text
    assert "+0.200 vs watershed" in text
    assert "| 12-20 px | 1 | 0.900 | 0.600 |" in text


def test_report_says_how_many_objects_end_within_one_slice():
    scores = [
        ObjectScore("real-like", "tissue-volume", 0, i, MODEL, 0.5, 20.0, extent_error=error)
        for i, error in enumerate([0, 1, 1, 2, 9])
    ]
    scores.append(ObjectScore("2d", "nuclei", 0, 1, MODEL, 0.9, 15.0))
    report = EvaluationReport("test-model", scores)
    assert report.within_slices("real-like", MODEL) == pytest.approx(0.6)
    assert report.within_slices("real-like", MODEL, slices=2) == pytest.approx(0.8)
    assert np.isnan(report.within_slices("2d", MODEL))
    text = report.to_markdown()
    assert "within one slice of the truth: model 60%." in text
    assert text.count("within one slice") == 1  # not under the 2-D table


def test_real_like_suite_scores_dice_and_extent_of_held_out_tissue_and_brain_volumes():
    from napari_samed2.model import load_model
    from napari_samed2.synthetic import BRAIN_CLASSES, brain_volume, tissue_volume
    from napari_samed2.train.evaluate import EVAL_SEED, evaluate, held_out_sets

    tissue, brain = held_out_sets(["real-like"], quick=True)
    base = EVAL_SEED + 1000 * 5  # the documented held-out seeds of the sixth suite
    assert np.array_equal(tissue.samples[0].image, tissue_volume((16, 96, 96), seed=base).image)
    assert np.array_equal(brain.samples[0].labels, brain_volume((12, 96, 96), seed=base).labels)
    assert (tissue.kind, brain.kind) == ("tissue-volume", "brain-volume")
    assert tissue.samples[0].image.dtype == brain.samples[0].image.dtype == np.uint16
    nano = load_model("samed2-nano", device="cpu", precision="fp32")
    report = evaluate(nano, suites=["real-like"], quick=True, baselines=False)
    for eval_set in (tissue, brain):
        labels = eval_set.samples[0].labels
        scored = {s.obj_id for s in report.scores if s.kind == eval_set.kind}
        assert 4 <= len(scored) <= 40 and scored <= set(eval_set.samples[0].object_ids)
        assert all(equivalent_diameter(labels == i) >= 8 for i in scored)
    assert len(tissue.samples[0].object_ids) > 40  # dense: the suite scores a choice
    assert {s.obj_id for s in report.scores if s.kind == "brain-volume"} <= set(BRAIN_CLASSES)
    for score in report.scores:
        assert score.suite == "real-like" and 0.0 <= score.dice <= 1.0
        assert 0 <= score.extent_error <= 16
    # a propagated object ends somewhere: not every object is off by the whole stack (what an
    # empty prediction scores)
    assert np.mean([s.extent_error for s in report.scores]) < 12
    assert "Real-like volumes" in report.to_markdown()
    assert 0.0 <= report.within_slices("real-like", MODEL) <= 1.0


def test_evaluate_data_runs_the_engine_and_baselines_on_user_data():
    sample = nuclei_image(shape=(96, 96), seed=4, degradation=CLEAR)
    net = build_model(small_config(), temporal_adapter=True)
    report = evaluate_data(net, sample.image, sample.labels, name="mine")
    objects = len(sample.object_ids)
    assert {s.method for s in report.scores} == {MODEL, WATERSHED, "random walker"}
    assert len(report.scores) == 3 * objects
    assert all(0.0 <= s.dice <= 1.0 for s in report.scores)
    assert report.mean("2d", WATERSHED) > 0.7  # clear nuclei: the baseline works


def test_zoom_adds_its_own_scores_for_every_object():
    sample = nuclei_image(shape=(96, 96), seed=4, degradation=CLEAR)
    net = build_model(small_config(), temporal_adapter=True)
    report = evaluate_data(net, sample.image, sample.labels, baselines=False, zoom=True)
    zoomed = [s for s in report.scores if s.method == ZOOMED]
    assert sorted(s.obj_id for s in zoomed) == sorted(sample.object_ids)
    assert all(0.0 <= s.dice <= 1.0 for s in zoomed)


def test_evaluate_command_rejects_unknown_suites(capsys):
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--suite", "nonsense"])
    assert args.func is run_evaluate
    assert args.func(args) == 2
    assert "nonsense" in capsys.readouterr().err


def test_another_seed_gives_other_held_out_images():
    from napari_samed2.train.evaluate import EVAL_SEED, held_out_sets

    card = held_out_sets(["2d"], quick=True)
    again = held_out_sets(["2d"], quick=True, seed=EVAL_SEED)
    other = held_out_sets(["2d"], quick=True, seed=20_000)
    for a, b, c in zip(card, again, other, strict=True):
        assert np.array_equal(a.samples[0].image, b.samples[0].image)
        assert not np.array_equal(a.samples[0].image, c.samples[0].image)
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    assert parser.parse_args(["evaluate", "--seed", "20000"]).seed == 20_000
    assert parser.parse_args(["evaluate"]).seed is None
