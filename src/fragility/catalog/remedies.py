"""The feature-space remedies a study may apply to a trained run's embeddings, each declared
once: the function that fits it, its parameters with their defaults, and what it is.

``config/schema.yaml`` describes each remedy's parameters for the config
(``$defs.remedy_params.<name>``, the types and ranges it accepts) and names the remedies in its
``method`` enum; :class:`fragility.workflow.config.Study` checks at every config load that it
names exactly these remedies and parameters, with these defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemedySpec:
    """A remedy: ``fit`` names its function (``"package.module:function"``),
    ``fit(train, val, classifier, seed, params) -> (W, b, normed, info)`` on the run's
    embeddings, ``params`` every parameter with its default, ``description`` a line for
    tables; ``posthoc`` adjusts the run's own classifier instead of fitting a fresh head."""

    fit: str
    params: dict
    description: str
    posthoc: bool = False


# phase 3 of the fresh-head remedies: a linear head fitted on the (over-sampled) training FE
HEAD_PARAMS = {
    "epochs": 10,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 2e-4,
    "batch_size": 128,
    "schedule": "cosine",
    "device": "cpu",
}
# how an over-sampling remedy keeps its head's epoch: by validation BAC, or the last one
HEAD_SELECTIONS = ("val_bac", "last")
OVERSAMPLING_PARAMS = {"target": None, "select": "val_bac"}
# tau_norm's candidates 0, 0.1, ..., 2 as numpy's linspace(0, 2, 21) makes them (0.1 * 3 is
# 0.30000000000000004): the values earlier results were chosen among
TAUS = [i * 0.1 for i in range(21)]

REMEDIES: dict[str, RemedySpec] = {
    "eos": RemedySpec(
        "fragility.remedies.oversampling:fit_eos",
        {"k": None, **OVERSAMPLING_PARAMS, **HEAD_PARAMS},
        "EOS in FE space as the paper describes it (base towards an enemy in its k-NN) "
        "+ fresh linear head",
    ),
    "eos_authors": RemedySpec(
        "fragility.remedies.oversampling:fit_eos_authors",
        {"k": None, **OVERSAMPLING_PARAMS, **HEAD_PARAMS},
        "EOS as the authors' code computes it (base towards the neighbour one rank nearer "
        "than the drawn enemy) + fresh linear head",
    ),
    "ros": RemedySpec(
        "fragility.remedies.oversampling:fit_ros",
        {**OVERSAMPLING_PARAMS, **HEAD_PARAMS},
        "random over-sampling of FE + fresh linear head",
    ),
    "smote": RemedySpec(
        "fragility.remedies.oversampling:fit_smote",
        {"k": 5, **OVERSAMPLING_PARAMS, **HEAD_PARAMS},
        "SMOTE in FE space + fresh linear head",
    ),
    "crt": RemedySpec(
        "fragility.remedies.retraining:fit_crt",
        dict(HEAD_PARAMS),
        "classifier re-training: fresh linear head, class-balanced minibatches",
    ),
    "tau_norm": RemedySpec(
        "fragility.remedies.posthoc:fit_tau_norm",
        {"tau": None, "taus": TAUS, "keep_bias": False},
        "τ-normalised classifier weights, τ by validation BAC (bias dropped)",
        posthoc=True,
    ),
    "logit_adjust": RemedySpec(
        "fragility.remedies.posthoc:fit_logit_adjust",
        {"tau": 1.0},
        "post-hoc logit adjustment: bias - τ log(training prior)",
        posthoc=True,
    ),
}
