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
        "preprocessing) is fitted on the training patients of each fold only, with one recipe: an inner "
        f"{ev.threshold_folds}-fold split of those patients gives them out-of-fold predictions, on which the "
        f"calibration (`{ev.calibration}`) and the decision threshold (`{ev.threshold_rule}`: "
        f"{_RULES[ev.threshold_rule]}) are fitted; both are applied to the test fold. Metrics are computed per "
        "repetition on all out-of-fold predictions and averaged over repetitions; the 95 % confidence "
        f"intervals come from a patient-level bootstrap ({ev.bootstrap} resamples of the patients, each "
        "recomputing the repeat-averaged metric). The SD across repetitions shows the split-to-split spread "
        "only. Calibration slope: logistic regression of the label on the logit of the prediction (1 ideal, "
        "< 1 too extreme, near 0 or negative: no usable ranking); calibration intercept: the same with the "
        "logit as offset (0 ideal, < 0 too high on average). Flagged fraction: share of patients at or "
        "above their fold's threshold.",
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
        "Fit time over the whole cross-validation (outer and inner fits): "
        + ", ".join(f"{model_label(s.name)} {s.seconds:.0f} s" for s in inputs.summaries)
        + ".",
        "",
    ]
    return lines


def _calibration_note(inputs: CardInputs) -> str:
    text = (
        f"- Class weighting (`{inputs.training.class_weight}`) trains as if both outcomes were equally "
        "common, which moves raw probabilities away from the real prevalence; the calibration "
        f"(`{inputs.evaluation.calibration}`, fitted on out-of-fold predictions) brings them back. A "
        "calibration fitted on this data is only as good as this data: recalibrate on local patients "
        "before reading the probabilities as risks."
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


_RULES = {
    "prevalence": "the inner out-of-fold flagged fraction equals the training prevalence",
    "youden": "Youden's J",
    "youden_capped": "Youden's J among thresholds flagging at most flag_cap x the prevalence",
}


def _checkpoint_lines(inputs: CardInputs, ck: Mapping[str, Any]) -> list[str]:
    ev = inputs.evaluation
    low, high = ck["prevalence"] / ck["flag_cap"], ck["prevalence"] * ck["flag_cap"]
    sane = low <= ck["training_flagged"] <= high
    cal = ck["calibration"]
    epochs = (
        f"- Refitted on all of them for {ck['best_epoch']} epochs, the median best epoch of the "
        f"{len(ck['inner_best_epochs'])} inner networks ({', '.join(str(e) for e in ck['inner_best_epochs'])}; "
        f"never fewer than {inputs.training.min_epochs})."
        if ck["refit"] else f"- Early stopping kept epoch {ck['best_epoch']} of {ck['epochs_run']} run."
    )
    return [
        f"- File: `{ck['file']}`",
        f"- SHA-256 (the model version `predict-expansion` reports): `{ck['sha256']}`",
        f"- Trained on all {ck['n_patients']} labelled patients ({ck['n_expanded']} expanded) with the "
        "procedure above.",
        epochs,
        f"- Calibration (Platt, fitted on {ev.threshold_folds}-fold out-of-fold predictions of those "
        f"patients): `p = sigmoid({cal['slope']:.3f} logit(p_network) {'-' if cal['intercept'] < 0 else '+'} "
        f"{abs(cal['intercept']):.3f})`"
        + (" (slope 0: the out-of-fold ranking ran backwards or was flat, so every patient gets the "
           "out-of-fold prevalence)." if cal["slope"] == 0 else "."),
        f"- Decision threshold {ck['threshold']:.3f} on the network's probability ({_RULES[ev.threshold_rule]}"
        f"; {ck['threshold_calibrated']:.3f} after calibration).",
        f"- Flagged fraction at that threshold: **{ck['training_flagged']:.1%} of its own training patients** "
        f"({ck['oof_flagged']:.1%} of their out-of-fold predictions); prevalence {ck['prevalence']:.1%}, "
        f"sane range {low:.1%}-{high:.1%}: " + ("within it." if sane else "**outside it**."),
        *([f"- On the {ck['n_unlabelled_rows']} patients of the table without a determined label (never seen in "
           f"training) it flags {ck['unlabelled_flagged']:.1%}."] if ck.get("n_unlabelled_rows") else []),
        f"- What `predict-expansion` prints with every prediction: \"{ck['statement']}\"",
        f"- Training time (inner folds + final fit, CPU): {ck['seconds']:.1f} s.",
        "",
    ]


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
        f"{tr.batch_size}, weighted cross-entropy (class weighting `{tr.class_weight}`). Each inner-fold "
        f"network stops early on a stratified {tr.validation_fraction:.0%} validation split (trailing mean "
        f"of {tr.smoothing} validation losses, never before epoch {tr.min_epochs}, patience {tr.patience}, "
        f"at most {tr.epochs} epochs); "
        + ("the final network is refitted on all its training patients for the median best epoch of the "
           "inner networks." if tr.refit else "the final network keeps its own early-stopped epoch."),
        "- **Logistic regression**: L2, C = 1, all features.",
        "- **Gradient boosting** (scikit-learn): 200 trees of depth 2, learning rate 0.05, subsample 0.8.",
        "- **Volume only**: logistic regression on the log baseline hematoma volume.",
        "- **BRAIN score** (Wang et al., Stroke 2015), partial: baseline volume, prior stroke (for recurrent "
        "ICH), hours from onset to CT; warfarin and intraventricular extension are not in the tables (0 "
        "points). `brain`: the paper's probabilities recalibrated like every model; `brain_published`: the "
        "paper's probabilities as they are. Nothing about the points is fitted.",
        "- **Pre-specified logistic**: L2 logistic regression on six predictors named by the literature "
        "(hours from onset to CT, baseline volume, shape irregularity 1 - sphericity, density heterogeneity "
        "SD / mean, hypodensity (median - 10th percentile) / median, systolic pressure).",
        "- **L1 logistic**: all features, the penalty chosen by an inner 5-fold log-loss (selection inside "
        "each fold).",
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
        lines += _checkpoint_lines(inputs, ck)
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
