"""Turn the workflow config (already schema-validated) into a list of fully resolved runs.

Training settings are layered, later wins: ``training`` defaults < the dataset's
``training`` < the named loss's settings < the run group's ``training``. The result for each
run is a plain dict, so Snakemake sees exactly the settings of each run as its params and
reruns only the runs whose settings changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from .data import LOADERS
from .errors import ConfigError
from .settings import ARCHITECTURES, LOSSES, TrainConfig
from .splits import Imbalance

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Run:
    dataset: str
    imbalance: str
    loss: str  # the name of an entry of ``losses``, used in output paths
    seed: int

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.imbalance}/{self.loss}/seed{self.seed}"


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def sorted_settings(obj):
    """``obj`` with every dict's keys sorted: Snakemake compares params by their text, so
    the same settings written in another key order must not look changed."""
    return json.loads(json.dumps(obj, sort_keys=True))


class Study:
    """The runs a config asks for and the resolved settings of each."""

    def __init__(self, config: dict):
        self.config = config
        self.datasets: dict = config.get("datasets", {})
        self.losses: dict = config.get("losses", {})
        self.runs: list[Run] = []
        self._train_overrides: dict[Run, dict] = {}
        for name, settings in self.datasets.items():
            loader = settings.get("loader", name)
            if loader not in LOADERS:
                raise ConfigError(
                    f"dataset {name!r} has no loader {loader!r}; set 'loader' to one of "
                    f"{sorted(LOADERS)}"
                )
        for group in config.get("runs", []):
            self._add_group(group)
        if not self.runs:
            raise ConfigError("the config lists no runs: add at least one entry under 'runs'")

    def _add_group(self, group: dict) -> None:
        dataset = group["dataset"]
        if dataset not in self.datasets:
            raise ConfigError(
                f"run group names dataset {dataset!r}, which is not configured under "
                f"'datasets' (configured: {sorted(self.datasets)})"
            )
        for imbalance in group["imbalance"]:
            Imbalance.parse(imbalance)
            for loss in group["loss"]:
                if loss not in self.losses:
                    raise ConfigError(
                        f"unknown loss {loss!r}; the config's 'losses' section defines "
                        f"{sorted(self.losses)}"
                    )
                for seed in group["seeds"]:
                    run = Run(dataset, str(imbalance), loss, int(seed))
                    if run not in self._train_overrides:
                        self.runs.append(run)
                    self._train_overrides[run] = group.get("training", {})
        for run in self.runs:
            self.train_settings(run)  # fail now, not halfway through the workflow
        self.remedy_base_runs()

    def data_settings(self, name: str) -> dict:
        """What determines the canonical form of dataset ``name`` (not its split or training)."""
        entry = self.datasets[name]
        return sorted_settings(
            {
                "loader": entry.get("loader", name),
                "root": entry.get("root"),
                "download": entry.get("download", False),
                "options": entry.get("options", {}),
            }
        )

    def split_settings(self, dataset: str) -> dict:
        split = dict(self.datasets[dataset].get("split", {}))
        return sorted_settings(
            {
                "n_max": split.get("n_max", 1000),
                "n_val": split.get("n_val", 0),
                "n_test": split.get("n_test"),
                "class_order": split.get("class_order"),
            }
        )

    def train_settings(self, run: Run) -> dict:
        """The resolved ``TrainConfig`` fields of ``run`` (a plain, JSON-able dict)."""
        settings = dict(self.config.get("training", {}))
        settings.update(self.datasets[run.dataset].get("training", {}))
        settings.update(self.losses[run.loss])
        settings.update(self._train_overrides[run])
        settings["seed"] = run.seed
        unknown = set(settings) - TRAIN_FIELDS
        if unknown:
            raise ConfigError(f"unknown training settings {sorted(unknown)} for run {run.path}")
        if settings.get("loss", "ce") not in LOSSES:
            raise ConfigError(f"unknown loss {settings['loss']!r}; choose one of {list(LOSSES)}")
        if settings.get("arch", "resnet32") not in ARCHITECTURES:
            raise ConfigError(
                f"unknown arch {settings['arch']!r}; choose one of {sorted(ARCHITECTURES)}"
            )
        TrainConfig(**settings)  # validates select, epochs
        return sorted_settings(settings)

    def remedy_methods(self) -> dict[str, dict]:
        """Enabled feature-space remedies: name -> {"method": ..., "params": {...}}."""
        methods = self.config.get("remedies", {}).get("methods", {})
        out = {}
        for name, entry in methods.items():
            if not entry.get("enabled", True):
                continue
            params = {k: v for k, v in entry.items() if k not in ("method", "enabled")}
            out[name] = sorted_settings({"method": entry["method"], "params": params})
        return out

    def remedy_base_runs(self) -> list[Run]:
        """The trained runs the remedies treat (default: every imbalanced run)."""
        base = self.config.get("remedies", {}).get("base", {})
        unknown = set(base.get("loss", [])) - set(self.losses)
        if unknown:
            raise ConfigError(f"remedies.base.loss names unknown losses {sorted(unknown)}")
        return [
            run
            for run in self.runs
            if run.imbalance != "balanced"
            and run.imbalance in base.get("imbalance", [run.imbalance])
            and run.loss in base.get("loss", [run.loss])
        ]

    def runs_for(self, **match) -> list[Run]:
        return [r for r in self.runs if all(getattr(r, k) == v for k, v in match.items())]
