"""The predictor's model card (Markdown), written from what the training job measured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ichpipe.atomic import atomic_write
from ichpipe.pipeline.config.predictor_config import EvaluationConfig, TrainingConfig
from ichpipe.pipeline.risk.cross_validation import ModelSummary, References, markdown_table, model_label

__all__ = ["CardInputs", "model_card", "write_model_card"]


@dataclass(frozen=True)
class CardInputs:
    """Everything the card reports.

    Attributes
    ----------
    title:
        First heading.
    data:
        One paragraph on the training data (source, patients, label rule).
    feature_space:
        Feature space of the inputs.
    feature_groups:
        Group name to the feature names in it (model input order inside groups).
    excluded:
        Inputs deliberately not used, to why.
    summaries, refs:
        Cross-validated results, and the no-skill references (``None`` without CV).
    evaluation, training:
        The settings used.
    checkpoint:
        ``{"file", "sha256", "threshold", "epochs_run", "best_epoch"}`` of the
        final model, or ``None`` when none was written.
    seconds:
        Wall time of the stages.
    calibration_png:
        Path of the calibration plot, relative to the card.
    notes:
        Extra paragraphs (limitations found in this run).
    """

    title: str
    data: str
    feature_space: str | None
    feature_groups: Mapping[str, Sequence[str]]
    excluded: Mapping[str, str]
    summaries: Sequence[ModelSummary]
    refs: References | None
    evaluation: EvaluationConfig
    training: TrainingConfig
    checkpoint: Mapping[str, Any] | None
    seconds: Mapping[str, float]
    calibration_png: str | None
    notes: Sequence[str] = ()


def _reading(summaries: Sequence[ModelSummary]) -> list[str]:
    """Plain-language reading of the intervals (computed from them, not written by hand)."""
    chance = [s for s in summaries if s.auc.low <= 0.5 <= s.auc.high]
    below = [s for s in summaries if s.auc.high < 0.5]
    above = [s for s in summaries if s.auc.low > 0.5]
    lines = []
    if chance:
        lines.append(
            "The AUC interval includes 0.5 (no evidence of discrimination) for: "
            + ", ".join(model_label(s.name) for s in chance) + "."
        )
    if above:
        lines.append(
            "The AUC interval lies above 0.5 for: " + ", ".join(model_label(s.name) for s in above) + "."
        )
    if below:
        lines.append(
            "The AUC interval lies below 0.5 for: " + ", ".join(model_label(s.name) for s in below)
            + ". A cross-validated AUC below 0.5 is what refitting a weak or absent association on each "
            "training fold produces (the fitted direction changes between folds); it is not a usable inverse "
            "relationship."
        )
    return [" ".join(lines), ""] if lines else []


def _results(inputs: CardInputs) -> list[str]:
    ev = inputs.evaluation
    if not inputs.summaries or inputs.refs is None:
        return ["No cross-validation was run with this checkpoint (`--no-cv`).", ""]
    refs = inputs.refs
    best = max(inputs.summaries, key=lambda s: s.auc.value)
    lines = [
        f"Patient-level stratified {ev.folds}-fold cross-validation, repeated {ev.repeats} times "
        f"({ev.folds * ev.repeats} fits per model), seed {inputs.training.seed}; {refs.n_patients} patients, "
        f"{refs.n_expanded} expanded ({refs.n_expanded / refs.n_patients:.1%}). Every model (and its "
        "preprocessing) is fitted on the training patients of each fold only; the decision threshold is "
        f"chosen inside them (Youden's J on out-of-fold predictions of an inner {ev.threshold_folds}-fold "
        "split) and applied to the test fold. Metrics are computed per repetition on all out-of-fold "
        "predictions and averaged over repetitions; the 95 % confidence intervals come from a "
        f"patient-level bootstrap ({ev.bootstrap} resamples of the patients, each recomputing the "
        "repeat-averaged metric). The SD across repetitions shows the split-to-split spread only.",
        "",
        markdown_table(inputs.summaries, refs),
        f"Majority-class accuracy (always 'no expansion'): **{refs.majority_accuracy:.3f}**. "
        f"Brier score of predicting the training folds' prevalence for everyone: {refs.prevalence_brier:.3f}.",
        "",
        f"Highest cross-validated AUC: {model_label(best.name)}, {best.auc.format()}.",
        "",
        *_reading(inputs.summaries),
    ]
    if inputs.calibration_png:
        lines += [f"![Calibration of the out-of-fold predictions]({inputs.calibration_png})", ""]
    lines += [
        "Fit time over the whole cross-validation (outer and inner threshold fits): "
        + ", ".join(f"{model_label(s.name)} {s.seconds:.0f} s" for s in inputs.summaries)
        + ".",
        "",
    ]
    return lines


def _calibration_note(inputs: CardInputs) -> str:
    text = (
        f"- Class weighting (`{inputs.training.class_weight}`) trains as if both outcomes were equally "
        "common, which moves probabilities away from the real prevalence; read them as ranks, or "
        "recalibrate on local data before reading them as risks."
    )
    if inputs.summaries and inputs.refs is not None:
        prevalence = inputs.refs.n_expanded / inputs.refs.n_patients
        means = ", ".join(f"{model_label(s.name)} {s.mean_probability:.2f}" for s in inputs.summaries)
        text += f" Mean out-of-fold predicted probability: {means}; observed share expanded {prevalence:.2f}."
    return text


def _seed_claim(inputs: CardInputs) -> str:
    text = "- Seed 004 reports 97.5 % accuracy on about 40 test patients of this data (one 60/40 split)."
    if inputs.summaries and inputs.refs is not None:
        best = max(inputs.summaries, key=lambda s: s.accuracy.value)
        text += (
            f" Under the evaluation above the best cross-validated accuracy is {best.accuracy.value:.1%} "
            f"({model_label(best.name)}), and predicting 'no expansion' for everyone scores "
            f"{inputs.refs.majority_accuracy:.1%}."
        )
    return text


def model_card(inputs: CardInputs) -> str:
    """The model card as Markdown text."""
    tr = inputs.training
    lines = [
        f"# {inputs.title}",
        "",
        "**Research use only. Not a medical device; not for diagnosis or treatment decisions.**",
        "",
        "## What it predicts",
        "",
        "The probability that a patient's intracerebral hematoma expands, from the first non-contrast CT "
        "and the clinical record at that time (label rule below). Output: a probability per patient, the "
        "checkpoint's SHA-256 as the model version, and whether it is above the decision threshold chosen "
        "at training.",
        "",
        "## Data and labels",
        "",
        inputs.data,
        "",
        "## Inputs",
        "",
        f"Feature space `{inputs.feature_space}`; {sum(len(v) for v in inputs.feature_groups.values())} "
        "features, in this order:",
        "",
    ]
    for group, names in inputs.feature_groups.items():
        lines.append(f"- **{group}** ({len(names)}): " + ", ".join(f"`{n}`" for n in names))
    lines += ["", "Never used as inputs (leakage guard and exclusions):", ""]
    lines += [f"- `{name}`: {why}" for name, why in inputs.excluded.items()]
    lines += [
        "",
        "Preprocessing, fitted on training patients only and stored in the checkpoint: median imputation, "
        "`sign(x) log(1 + |x|)` of features ending in " + ", ".join(f"`{s}`" for s in tr.log_suffixes)
        + ", then standardisation (mean 0, SD 1).",
        "",
        "## Models",
        "",
        "- **Self-attention 1D-CNN** (seed 004, registry `expansion_sacnn`): a 1D-convolution branch and a "
        "multi-head self-attention branch over the features as tokens, concatenated, two fully connected "
        f"layers. Adam lr {tr.learning_rate:g} (as the seed), weight decay {tr.weight_decay:g}, batch "
        f"{tr.batch_size}, weighted cross-entropy (class weighting `{tr.class_weight}`), early stopping on "
        f"a stratified {tr.validation_fraction:.0%} validation split of the training patients (patience "
        f"{tr.patience}, at most {tr.epochs} epochs), best-epoch weights kept.",
        "- **Logistic regression**: L2, C = 1, all features.",
        "- **Gradient boosting** (scikit-learn): 200 trees of depth 2, learning rate 0.05, subsample 0.8.",
        "- **Volume only**: logistic regression on the log baseline hematoma volume.",
        "",
        "All hyper-parameters were fixed before looking at results; none was tuned on this data.",
        "",
        "## Cross-validated results",
        "",
    ]
    lines += _results(inputs)
    lines += ["## The shipped checkpoint", ""]
    ck = inputs.checkpoint
    if ck is None:
        lines += ["No checkpoint was written.", ""]
    else:
        lines += [
            f"- File: `{ck['file']}`",
            f"- SHA-256 (the model version `predict-expansion` reports): `{ck['sha256']}`",
            f"- Trained on all {ck['n_patients']} labelled patients ({ck['n_expanded']} expanded) with the "
            "procedure above; decision threshold "
            f"{ck['threshold']:.3f} (Youden's J on {inputs.evaluation.threshold_folds}-fold out-of-fold "
            "predictions of those patients).",
            f"- Early stopping kept epoch {ck['best_epoch']} of {ck['epochs_run']} run"
            + (": the validation loss was lowest after the first epochs, i.e. nothing the network learnt "
               "from the training patients carried over to the held-out ones." if ck["best_epoch"] <= 3 else "."),
            f"- Training time (final fit + threshold folds, CPU): {ck['seconds']:.1f} s.",
            "",
        ]
    lines += [
        "## Limitations",
        "",
        "- Small single-source data set: the confidence intervals are wide; an AUC interval that includes "
        "0.5 means no evidence of discrimination.",
        _calibration_note(inputs),
        "- Feature spaces differ: the contest's radiomics are in voxel units on a non-HU intensity scale, "
        "while `ichpipe run` computes mm and HU (`ichpipe-ibsi/1`). A checkpoint refuses the other space; "
        "train on the space you will predict from.",
        _seed_claim(inputs),
    ]
    lines += [f"- {n}" for n in inputs.notes]
    lines += [
        "",
        "## Reproduce",
        "",
        "```",
        "ichpipe features --contest ../shared/data/contest-2023E --out features.csv --labels-out labels.csv",
        "ichpipe train predictor --features features.csv --labels labels.csv --out predictor-run",
        "ichpipe predict-expansion --features features.csv --patient sub101",
        "```",
        "",
        "Stage times of this run: " + ", ".join(f"{k} {v:.0f} s" for k, v in inputs.seconds.items()) + ".",
        "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, inputs: CardInputs) -> Path:
    """Write the card atomically."""
    data = model_card(inputs).encode("utf-8")

    def write(fh: BinaryIO) -> None:
        fh.write(data)

    return atomic_write(path, write)
