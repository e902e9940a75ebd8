"""The Methods paragraph and the results tables for a paper (maskdet.study.methods)."""

import pandas as pd

from maskdet.params import parse_params
from maskdet.study.methods import methods_paragraph, results_table, to_latex, to_markdown

METRICS = {
    "test_n": 240,
    "test_accuracy": 0.983333,
    "test_balanced_accuracy": 0.98,
    "test_f1_macro": 0.983434,
    "test_roc_auc_ovr_macro": 0.99951,
    "test_ece": 0.012345,
    "test_precision_with_mask": 1.0,
    "test_recall_with_mask": 0.975,
    "test_support_with_mask": 80,
    "test_f1_with_mask": 0.987342,
    "test_recall_mask_weared_incorrect": None,  # undefined (NaN in the run): no row, no made-up number
    "scene_faces": 9,
    "scene_recall": 0.888889,
    "test_accuracy_ci95_low": 0.95,  # the bootstrap over people (stages.evaluate)
    "test_accuracy_ci95_high": 1.0,
}


def test_the_table_carries_metrics_json_numbers_rounded_with_intervals_for_shares():
    table = results_table(METRICS)
    assert set(table["key"]) == {
        k for k, v in METRICS.items() if v is not None and "support" not in k and "_ci95_" not in k
    }
    for row in table.itertuples():
        expected = str(METRICS[row.key]) if row.key in ("test_n", "scene_faces") else f"{METRICS[row.key]:.3f}"
        assert row.value == expected, row
    ci = dict(zip(table["key"], table["ci95"]))
    assert ci["test_accuracy"] == "0.958-0.994"  # 236 of 240, Wilson
    assert ci["test_recall_with_mask"] and ci["scene_recall"] and ci["test_f1_macro"] == ""
    people = dict(zip(table["key"], table["ci95_people"]))
    assert people["test_accuracy"] == "0.950-1.000" and people["test_f1_macro"] == "" and people["scene_recall"] == ""


def test_latex_and_markdown_show_every_number_and_escape_what_latex_needs():
    table = results_table(METRICS)
    latex = to_latex(table, "Results on 240 crops (95 % Wilson)")
    assert latex.count(r"\begin{tabular}") == 1 and r"\toprule" in latex and r"\bottomrule" in latex
    assert r"with\_mask: recall" in latex and r"95 \% Wilson" in latex and "0.958--0.994" in latex
    assert "0.958--0.994 & 0.950--1.000" in latex and "0.958–0.994 | 0.950–1.000 |" in to_markdown(table, "R")
    assert "with_mask" not in latex.replace(r"with\_mask", "")
    markdown = to_markdown(table, "Results")
    for row in table.itertuples():
        assert f" & {row.value} & " in latex and f"| {row.value} |" in markdown
    assert markdown.count("\n| ") == len(table) + 1  # header and one line per row
    bare = to_markdown(table, None)  # for a report that numbers the caption itself
    assert bare.startswith("| | metric |") and bare.count("\n| ") == len(table)  # the header opens it


def test_methods_paragraph_states_data_split_model_schedule_and_machine():
    params = parse_params({})
    manifest = pd.DataFrame(
        {
            "split": ["train"] * 6 + ["val"] * 3 + ["test"] * 3,
            "label": ["with_mask", "without_mask", "mask_weared_incorrect"] * 4,
            "person": ["a", "a", "b", "b", "c", "c", "d", "d", "d", "e", "e", "e"],
        }
    )
    text = methods_paragraph(
        params,
        manifest,
        {"items_read": 13, "near_duplicate_groups": [["x", "y"]]},
        {
            "best_epoch": 17,
            "train_seconds": 359.1,
            "hardware": "Test CPU (2 cores, CPU only)",
            "git_commit": "0123456789abcdef",
            "git_tree": "modified: params.yaml",
        },
        {"python": "3.11.9", "tensorflow": "2.20.0"},
        measured="2026-12-06",
    )
    assert text.startswith("**Methods.**")
    assert "13 items read, 12 kept" in text and "1 groups" in text
    assert "test 3 crops of 1 people (1 with_mask, 1 without_mask, 1 mask_weared_incorrect)" in text
    assert "MobileNetV2 pretrained on ImageNet" in text and "input 160 x 160" in text
    assert f"up to {params.train.epochs} epochs" in text and f"top {params.train.fine_tune_layers} layers" in text
    assert "(epoch 17)" in text
    assert "6.0 min on Test CPU (2 cores, CPU only) at commit `0123456` with changes not yet committed." in text
    assert "The figures were measured on 2026-12-06." in text
    assert "MIT" in text and "public domain" in text and "tensorflow 2.20.0" in text
    assert "colour casts" in text and "20% of crops with a flat-coloured lower part" in text  # the default band
    assert "incorrectly worn masks zoomed in keep the chin" in text
    assert "answers for a share of 0.03 of faces with a mask worn incorrectly" in text and "Bayes' rule" in text
    own = parse_params({"predict": {"incorrect_share": None}})
    assert "Bayes" not in methods_paragraph(own, manifest, {}, {}, {})  # the classifier's own probabilities


def test_a_voc_set_is_counted_in_photos_and_groups_not_people():
    """VOC scenes name no person: the counts, the unseen units and the bootstrap
    speak of photos and photo groups ("1 people" was a count of empty names)."""
    manifest = pd.DataFrame(
        {
            "split": ["train"] * 4 + ["val"] * 2 + ["test"] * 3,
            "label": ["with_mask"] * 9,
            "person": [""] * 9,
            "photo": ["p1", "p1", "p2", "p3", "p4", "p4", "p5", "p6", "p6"],
            "group": ["photo:p1", "photo:p1", "photo:p2", "photo:p2", "photo:p4", "photo:p4"] + ["photo:p5"] * 3,
        }
    )
    text = methods_paragraph(parse_params({}), manifest, {}, {}, {})
    both = methods_paragraph(
        parse_params({"data": {"source": "voc", "add_sample": True}}, check_paths=False), manifest, {}, {}, {}
    )
    assert "Pascal VOC scenes" in both and "beside it, in training and validation only, the project's built-in" in both
    assert "train 4 crops from 3 photos in 2 groups" in text and "test 3 crops from 2 photos in 1 groups" in text
    assert "people" not in text and "photo groups unseen in training" in text


def test_the_paragraph_names_the_epochs_whose_weights_were_averaged():
    manifest = pd.DataFrame({"split": ["train", "val", "test"], "label": ["with_mask"] * 3, "person": ["a", "b", "c"]})
    three = parse_params({"train": {"average_epochs": 3}})
    averaged = methods_paragraph(three, manifest, {}, {"kept_epochs": [15, 17, 21], "best_epoch": 17}, {})
    assert "the weights of the 3 epochs with the lowest validation losses (epochs 15, 17, 21) were averaged" in averaged
    short = methods_paragraph(three, manifest, {}, {"kept_epochs": [1, 2], "best_epoch": 2}, {})  # two epochs ran
    assert "the weights of the 2 epochs with the lowest validation losses (epochs 1, 2) were averaged" in short
    one = methods_paragraph(parse_params({}), manifest, {}, {"best_epoch": 17}, {})  # the default: one epoch
    assert "the weights of the epoch with the lowest validation loss (epoch 17) were kept" in one


def test_the_bootstrap_column_names_what_it_resamples():
    """A VOC study resamples photo groups, not people: the column's header says which."""
    table = results_table(METRICS)
    assert r"95\,\% CI (people) \\" in to_latex(table, "R") and "| 95 % CI (people) |" in to_markdown(table, None)
    latex, markdown = to_latex(table, "R", units="photo groups"), to_markdown(table, None, "photo groups")
    assert r"95\,\% CI (photo groups) \\" in latex and "| 95 % CI (photo groups) |" in markdown
    assert "people" not in latex + markdown
