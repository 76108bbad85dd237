"""Turn the workflow config (already schema-validated) into a list of fully resolved runs.

Training settings are layered, later wins: ``training`` defaults < the dataset's
``training`` < the named loss's settings < the run group's ``training``. The result for each
run is a plain dict, so Snakemake sees exactly the settings of each run as its params and
reruns only the runs whose settings changed.

:class:`Study` also checks what the schema cannot see, before any job runs: each remedy's
parameters against its method's schema (``$defs.remedy_params`` of ``config/schema.yaml``),
``select: val_bac`` and a validation-chosen ``tau_norm`` against ``n_val``, ``class_order``
and ``n_max``/``n_val``/``n_test`` against the sizes of the datasets known without reading
them (:data:`KNOWN_SIZES`), ``class_order`` against the splits already in the results root.
Every error is one line naming the key and the fix.

Models trained elsewhere (``models``) are runs too, one per entry and seed, named by the
entry (its ``loss`` in paths): their settings are resolved here, their files checked before
any job, and those without a known training subset set apart (:attr:`Study.test_only_runs`).

A study is what its config file says (:func:`study_config`): the file given to the workflow is
the whole study, and one that adds to another names that base with ``extends:``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fragility.catalog.layout import IMBALANCE, Layout
from fragility.catalog.remedies import HEAD_SELECTIONS, REMEDIES
from fragility.data.datasets import LOADERS, missing_raw_files
from fragility.data.splits import Imbalance, check_recorded_class_orders, ldam_drw_parameters
from fragility.errors import ConfigError
from fragility.training.settings import (
    ARCHITECTURES,
    LDAM_DRW_ARCHS,
    LOSSES,
    MFW_LAYERS,
    SELECTIONS,
    TrainConfig,
)

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# the workflow's schema, in the repository this package is installed from (editable)
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "config" / "schema.yaml"

# Datasets whose per-class sizes are fixed and known without reading them: loader ->
# (classes, images of the smallest class in train, in test). None: it depends on the files
# (CelebA's black-haired subset; an image folder is not listed at all).
KNOWN_SIZES: dict[str, tuple[int, int | None, int | None]] = {
    "fashion_mnist": (10, 6000, 1000),
    "cifar10": (10, 5000, 1000),
    "cifar100": (100, 500, 100),
    "svhn": (10, 4659, 1595),  # torchvision's train and test files; digit 9 is the smallest
    "digits": (10, 139, 35),  # scikit-learn's 1,797 digits split 80/20 per class; class 8
    "celeba": (2, None, None),
}


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The workflow's JSON schema (``config/schema.yaml``) as a dict."""
    # libyaml's loader where present: this runs at every workflow start (``snakemake -n``)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def merge_config(base: dict, over: Mapping) -> dict:
    """``base`` updated in place with ``over`` as Snakemake merges configs: dicts key by key,
    every other value (a list too) replaced whole."""
    for key, value in over.items():
        if isinstance(value, Mapping):
            inner = base.get(key)
            base[key] = merge_config(inner if isinstance(inner, dict) else {}, value)
        else:
            base[key] = value
    return base


def _read_config_file(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, list[Path]]:
    """The config in ``path`` over the base its ``extends`` names (recursively), and the
    files read, base first."""
    if path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, path.resolve()))
        raise ConfigError(f"{path}: extends goes round in a circle ({chain})")
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        config = yaml.load(path.read_text(), Loader=loader)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        first = " ".join(str(error).split())
        raise ConfigError(f"{path} is not valid YAML: {first}") from None
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, not {type(config).__name__}")
    base_name = config.pop("extends", None)
    if base_name is None:
        return config, [path]
    if not isinstance(base_name, str) or not base_name:
        raise ConfigError(f"{path}: extends must be the path of a config file, not {base_name!r}")
    base_path = Path(os.path.normpath(path.parent / base_name))
    if not base_path.is_file():
        raise ConfigError(
            f"{path}: extends names {base_name}, but there is no file {base_path} (the path "
            "starts at the folder of the file that names it)"
        )
    base, files = _read_config_file(base_path, (*seen, path.resolve()))
    return merge_config(base, config), [*files, path]


def study_config(
    configfiles: Sequence[str | os.PathLike],
    overrides: Mapping | None = None,
    default: str | os.PathLike = "config.yaml",
) -> tuple[dict, list[Path]]:
    """The config of the study the workflow runs, and the files it was read from.

    The config files given on the command line (``--configfile``) are the whole study,
    merged in their order; without any, ``default`` is. A file that adds to another study
    says so with ``extends: <path>`` (relative to its own folder) and is merged over that
    base, which may extend another. ``overrides`` (``--config key=value``) come last. Merging
    is Snakemake's: dicts key by key, lists replaced whole. So a preset without ``runs`` has
    none, rather than the default study's."""
    if overrides and "extends" in overrides:
        raise ConfigError("extends: name the base in a config file, not with --config")
    config: dict = {}
    files: list[Path] = []
    for name in [Path(f) for f in configfiles] or [Path(default)]:
        part, read = _read_config_file(name)
        merge_config(config, part)
        files += [f for f in read if f not in files]
    return merge_config(config, overrides or {}), files


def _key(path) -> str:
    """``['runs', 0, 'imbalance']`` -> ``runs[0].imbalance``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the config's top level"


def schema_error_line(error: BaseException) -> str:
    """One line for a failed schema validation (Snakemake's ``validate`` wraps jsonschema's
    ``ValidationError``, which it chains as the cause): the key, what is wrong, where to look."""
    cause = error
    while cause is not None and not isinstance(cause, ValidationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return str(error).strip().splitlines()[0]
    message = " ".join(cause.message.split())
    where = _key(cause.absolute_path)
    return f"{where}: {message}; config/schema.yaml lists the valid keys and values"


# Where the schema lists a registry's names, and the registry (the one list each)
def _registries() -> dict[tuple, tuple[str, list]]:
    return {
        ("$defs", "training", "properties", "arch", "enum"): (
            "fragility.training.settings.ARCHITECTURES",
            list(ARCHITECTURES),
        ),
        ("$defs", "training", "properties", "loss", "enum"): (
            "fragility.training.settings.LOSSES",
            list(LOSSES),
        ),
        ("$defs", "training", "properties", "select", "enum"): (
            "fragility.training.settings.SELECTIONS",
            list(SELECTIONS),
        ),
        ("$defs", "training", "properties", "mfw", "properties", "layer", "enum"): (
            "fragility.training.settings.MFW_LAYERS",
            list(MFW_LAYERS),
        ),
        (
            "properties",
            "remedies",
            "properties",
            "methods",
            "additionalProperties",
            "properties",
            "method",
            "enum",
        ): ("fragility.catalog.remedies.REMEDIES", list(REMEDIES)),  # fmt: skip
        ("$defs", "remedy_select", "enum"): (
            "fragility.catalog.remedies.HEAD_SELECTIONS",
            list(HEAD_SELECTIONS),
        ),
        ("properties", "runs", "items", "properties", "imbalance", "items", "pattern"): (
            "fragility.catalog.layout.IMBALANCE",
            f"^(?:{IMBALANCE})$",
        ),
    }


def check_schema(schema: dict) -> None:
    """The names the config schema lists are those of the registries, the one list of each:
    the architectures, losses, checkpoint selections and MFW layers of training, the
    imbalance pattern, the remedies, and each remedy's parameters (``$defs.remedy_params``)
    with their defaults. A difference is a bug of this repository, reported in one line."""
    for path, (registry, names) in _registries().items():
        node = schema
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if node != names:
            where = ".".join(k for k in path if k != "properties")
            raise ConfigError(
                f"config/schema.yaml {where} is {node!r}, but {registry} holds {names!r}: "
                "make the schema name what the registry holds"
            )
    defs = schema["$defs"]
    if list(defs.get("remedy_params", {})) != list(REMEDIES):
        raise ConfigError(
            f"config/schema.yaml $defs.remedy_params describes {list(defs.get('remedy_params', {}))}"
            f", but fragility.catalog.remedies.REMEDIES holds {list(REMEDIES)}"
        )
    for name, remedy in REMEDIES.items():
        described = _parameter_defaults(defs["remedy_params"][name], defs)
        if not _same_defaults(described, remedy.params):
            raise ConfigError(
                f"config/schema.yaml $defs.remedy_params.{name} describes {described}, but "
                f"fragility.catalog.remedies.REMEDIES[{name!r}] has the parameters "
                f"{remedy.params}: make the two the same"
            )


def _parameter_defaults(schema: dict, defs: dict) -> dict:
    """A remedy's parameters (its ``allOf`` references' included) and their defaults."""
    properties = {}
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        target = defs[ref.rsplit("/", 1)[-1]] if ref.startswith("#/$defs/") else part
        properties.update(target.get("properties", {}))
    properties.update(schema.get("properties", {}))
    out = {}
    for name, prop in properties.items():
        if "$ref" in prop:
            prop = defs[prop["$ref"].rsplit("/", 1)[-1]]
        out[name] = prop.get("default")
    return out


def _same_defaults(a: dict, b: dict) -> bool:
    """Equal parameter names and defaults; numbers within 1e-12 (the schema writes tau_norm's
    candidates as decimals, the registry holds them as computed)."""

    def same(x, y) -> bool:
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            return math.isclose(x, y, rel_tol=0, abs_tol=1e-12)
        return x == y

    return set(a) == set(b) and all(same(a[k], b[k]) for k in a)


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

    def __init__(self, config: dict, schema: dict | None = None):
        """``config`` already validated against (and completed from) the schema; ``schema``
        that schema (default: :func:`load_schema`), for the remedies' parameters."""
        self.config = config
        self.schema = load_schema() if schema is None else schema
        check_schema(self.schema)
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
            self._check_split(name, loader)
        # models trained elsewhere (config ``models``): runs that enter at their checkpoint;
        # those whose training subset is unknown get only their test-set outputs
        self.models: dict = config.get("models", {})
        self.external: dict[Run, dict] = {}
        self.test_only_runs: list[Run] = []
        self.notes: list[str] = []  # said once at start-up (what a model cannot have)
        for name in sorted(set(self.models) & set(self.losses)):
            raise ConfigError(
                f"models.{name}: {name!r} is also the name of a loss under 'losses'; give the "
                "model another name (it is the name of its folder)"
            )
        for group in config.get("runs", []):
            self._add_group(group)
        for name, entry in self.models.items():
            self._add_model(name, entry)
        if not self.runs and not self.test_only_runs:
            raise ConfigError(
                "the config lists no runs and no models: add an entry under 'runs' or 'models'"
            )
        self._check_selection()
        self._check_remedies()
        self._check_raw_data()

    # -- checks the schema cannot express ------------------------------------------------------

    def _check_split(self, name: str, loader: str) -> None:
        """``class_order`` is an order of the dataset's classes; the pool, validation and test
        sets fit into the smallest class where the dataset's sizes are known."""
        split, key = self.split_settings(name), f"datasets.{name}.split"
        n_classes, n_train, n_test = KNOWN_SIZES.get(loader, (None, None, None))
        order = split["class_order"]
        if isinstance(order, list):
            n = len(order) if n_classes is None else n_classes
            if sorted(order) != list(range(n)):
                raise ConfigError(
                    f"{key}.class_order {order} is not an order of the {n} classes of "
                    f"{loader}: list each of 0..{n - 1} exactly once"
                )
        # one class order per results root: never redraw or mix in another order's runs
        results = self.config.get("results", "results")
        check_recorded_class_orders(results, name, order, f"{key}.class_order")
        n_max, n_val = split["n_max"], split["n_val"]
        if n_train is not None and n_max + n_val > n_train:
            asked = f"n_max={n_max}" + (f" + n_val={n_val} = {n_max + n_val}" if n_val else "")
            raise ConfigError(
                f"{key}.n_max: {asked}, but the smallest class of {loader} has {n_train} "
                "training images (the pool and validation set come from them); lower n_max"
                + (" or n_val" if n_val else "")
            )
        if n_test is not None and split["n_test"] is not None and split["n_test"] > n_test:
            raise ConfigError(
                f"{key}.n_test: {split['n_test']}, but the smallest class of {loader} has "
                f"{n_test} test images; lower n_test, or set it to null to keep them all"
            )

    def _check_raw_data(self) -> None:
        """With ``download: false``, the raw files of every dataset a run uses are where the
        config says (or an image folder's root exists), unless its canonical ``.npz`` is
        built already: on a cluster a missing file found by the first job costs a queue wait."""
        layout = Layout(results="", data_dir=self.config.get("data_dir", "data"))
        used = dict.fromkeys(run.dataset for run in [*self.runs, *self.test_only_runs])
        for name in used:
            settings = self.data_settings(name)
            canonical = layout.dataset(name)
            if settings["download"] or Path(canonical).exists():
                continue
            problem = missing_raw_files(settings["loader"], settings["root"])
            if problem:
                raise ConfigError(
                    f"datasets.{name}.root: {problem} (checked because download is false "
                    f"and {canonical} is not built)"
                )

    def _check_selection(self) -> None:
        """``select: val_bac`` needs a validation split."""
        for run in self.trained_runs:
            if self.train_settings(run).get("select") != "val_bac":
                continue
            if self.split_settings(run.dataset)["n_val"] == 0:
                raise ConfigError(
                    f"select: val_bac (run {run.path}) needs a validation split, but "
                    f"datasets.{run.dataset}.split.n_val is 0; set n_val > 0, or select: "
                    "test_bac or last"
                )

    def _check_remedies(self) -> None:
        """Each remedy's parameters against its method's schema; a ``tau_norm`` that chooses
        τ on the validation split needs one in every run it treats."""
        defs = self.schema["$defs"]
        bases = self.remedy_base_runs()
        for name, entry in self.config.get("remedies", {}).get("methods", {}).items():
            method, key = entry["method"], f"remedies.methods.{name}"
            params = {k: v for k, v in entry.items() if k not in ("method", "enabled")}
            schema = defs["remedy_params"][method]
            valid = _parameters(schema, defs)
            unknown = sorted(set(params) - set(valid))
            if unknown:
                raise ConfigError(
                    f"{key}.{unknown[0]}: {method} has no parameter {unknown[0]!r}; "
                    f"valid: {', '.join(valid) or 'none'} (and method, enabled)"
                )
            error = best_match(Draft202012Validator({"$defs": defs, **schema}).iter_errors(params))
            if error is not None:
                where = ".".join([key, *map(str, error.absolute_path)])
                raise ConfigError(
                    f"{where}: {' '.join(error.message.split())}; "
                    f"$defs.remedy_params.{method} in config/schema.yaml says what it takes"
                )
            if method == "tau_norm" and params.get("tau") is None and entry.get("enabled", True):
                for run in bases:
                    if self.n_val(run) == 0:
                        where = (
                            f"model {run.loss!r} has none (a model trained elsewhere may "
                            "have seen any training image)"
                            if run in self.external
                            else f"datasets.{run.dataset}.split.n_val is 0"
                        )
                        raise ConfigError(
                            f"{key} chooses tau on the validation split, but {where} (run "
                            f"{run.path}); set n_val > 0, or fix {key}.tau"
                        )

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
        order = split.get("class_order")
        return sorted_settings(
            {
                "n_max": split.get("n_max", 1000),
                "n_val": split.get("n_val", 0),
                "n_test": split.get("n_test"),
                # label order is None, as before the option had names: same params, no rerun
                "class_order": None if order == "label" else order,
            }
        )

    def train_settings(self, run: Run) -> dict:
        """The resolved ``TrainConfig`` fields of ``run`` (a plain, JSON-able dict)."""
        if run in self.external:
            raise ConfigError(f"run {run.path} is model {run.loss!r}, trained elsewhere")
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
        unknown = set(base.get("loss", [])) - set(self.losses) - set(self.models)
        if unknown:
            raise ConfigError(
                f"remedies.base.loss names unknown losses {sorted(unknown)} (neither under "
                "'losses' nor under 'models')"
            )
        return [
            run
            for run in self.runs
            if run.imbalance != "balanced"
            and run.imbalance in base.get("imbalance", [run.imbalance])
            and run.loss in base.get("loss", [run.loss])
        ]

    def runs_for(self, **match) -> list[Run]:
        runs = self.runs + self.test_only_runs
        return [r for r in runs if all(getattr(r, k) == v for k, v in match.items())]

    @property
    def trained_runs(self) -> list[Run]:
        """The runs this workflow trains (not the models trained elsewhere)."""
        return [run for run in self.runs if run not in self.external]

    def run_names(self) -> list[str]:
        """Every name a run folder's ``{loss}`` can take: the losses and the models."""
        return sorted({*self.losses, *self.models})

    def loss_entry(self, name: str) -> dict | None:
        """The training settings behind a run's ``loss`` name: its entry under ``losses``, or
        what a model's ``trained_with`` says of it."""
        if name in self.models:
            return dict(self.models[name].get("trained_with") or {})
        return self.losses.get(name)

    def n_val(self, run: Run) -> int:
        """Validation images per class of a run's split (none for a model trained
        elsewhere, unless it shares the study's split)."""
        settings = self.external.get(run)
        if settings is not None and settings["training_subset"]["mode"] != "study":
            return 0
        return self.split_settings(run.dataset)["n_val"]

    def claim_partner(self, run: Run) -> tuple[Run | None, str]:
        """The balanced run the balanced-vs-imbalanced claims compare ``run`` with, or None
        and why there is none: a balanced run of the same dataset and loss, trained with the
        same settings but the seed (so the same head, architecture and epochs); the same
        seed when it exists, else the lowest (a study may train one balanced run for several
        imbalanced seeds)."""
        if run.imbalance == "balanced":
            return None, "a balanced run has no balanced partner"
        if run in self.external:
            return None, f"model {run.loss!r} was trained elsewhere: it has no balanced partner"
        balanced = [r for r in self.trained_runs if r.imbalance == "balanced"]
        same = sorted(
            (r for r in balanced if (r.dataset, r.loss) == (run.dataset, run.loss)),
            key=lambda r: (r.seed != run.seed, r.seed),
        )
        if not same:
            losses = sorted({r.loss for r in balanced if r.dataset == run.dataset})
            return None, (
                f"no balanced {run.dataset} run with loss {run.loss} (balanced runs: "
                f"{', '.join(losses) or 'none'}); another loss's head is not comparable"
            )
        ours = {k: v for k, v in self.train_settings(run).items() if k != "seed"}
        for partner in same:
            theirs = {k: v for k, v in self.train_settings(partner).items() if k != "seed"}
            if theirs == ours:
                return partner, ""
        differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        return None, (
            f"the balanced {run.loss} run {same[0].path} was trained with other {', '.join(differ)}"
        )

    # -- models trained elsewhere (config ``models``) ----------------------------------------

    def is_external(self, run: Run) -> bool:
        return run in self.external

    def external_settings(self, run: Run) -> dict:
        """The resolved config entry of a model trained elsewhere, for one seed."""
        return self.external[run]

    def external_split_settings(self, run: Run) -> dict:
        """What determines the split of a model trained elsewhere (its rule's params): the
        mode and what the mode reads, the seed and the study's test draw."""
        subset = self.external[run]["training_subset"]
        split, mode = self.split_settings(run.dataset), subset["mode"]
        out = {"mode": mode, "seed": run.seed, "n_test": split["n_test"]}
        out["class_order"] = split["class_order"]
        if mode in ("study", "none"):
            out["n_max"] = split["n_max"]
        if mode == "study":
            out.update(imbalance=run.imbalance, n_val=split["n_val"])
        if mode == "ldam_drw":
            out.update({k: subset[k] for k in ("imb_type", "imb_factor", "rand_number")})
        return sorted_settings(out)

    def _add_model(self, name: str, entry: dict) -> None:
        key = f"models.{name}"
        if entry["dataset"] not in self.datasets:
            raise ConfigError(
                f"{key}.dataset {entry['dataset']!r} is not configured under 'datasets' "
                f"(configured: {sorted(self.datasets)})"
            )
        try:
            Imbalance.parse(entry["imbalance"])
        except ConfigError as error:
            raise ConfigError(f"{key}.imbalance: {error}") from None
        seeds = [int(seed) for seed in entry.get("seeds", [0])]
        if len(seeds) > 1 and "{seed}" not in entry["checkpoint"]:
            raise ConfigError(
                f"{key}.checkpoint: {len(seeds)} seeds need one checkpoint each; write "
                "'{seed}' where the seed stands in its path"
            )
        base = _model_settings(name, entry)
        for seed in seeds:
            run = Run(entry["dataset"], entry["imbalance"], name, seed)
            settings = _for_seed(base, seed)
            self._check_model_files(key, settings)
            self.external[run] = settings
            if settings["training_subset"]["mode"] == "none":
                self.test_only_runs.append(run)
            else:
                self.runs.append(run)
        if base["training_subset"]["mode"] == "none":
            self.notes.append(
                f"{key}: its training subset is unknown (training_subset.mode: none), so only "
                "its test metrics, embeddings and RQ1 run; RQ2-RQ7, the bootstrap, the claims "
                "and the remedies need the images it was trained on (set training_subset.mode "
                "to study, ldam_drw or index_file)"
            )

    def _check_model_files(self, key: str, settings: dict) -> None:
        """The checkpoint exists or is the ``model.pt`` of a run this study trains; an entry
        point's file and an index file exist (or lie under the results root)."""
        layout = Layout(self.config.get("results", "results"), self.config.get("data_dir", "data"))
        trained = {os.path.normpath(layout.file("model", r.path)) for r in self.trained_runs}
        checkpoint = settings["checkpoint"]
        if not Path(checkpoint).is_file() and os.path.normpath(checkpoint) not in trained:
            raise ConfigError(
                f"{key}.checkpoint: no file {checkpoint} (relative paths start at the working "
                "directory), and it is not the model.pt of a run of this study"
            )
        results = Path(layout.results).resolve()
        subset = settings["training_subset"]
        files = [("training_subset.path", subset["path"])] if subset["mode"] == "index_file" else []
        if settings["format"] == "entry_point" and settings["arch"].split(":")[0].endswith(".py"):
            files.append(("arch", settings["arch"].rsplit(":", 1)[0]))
        for what, path in files:
            inside = Path(path).resolve().is_relative_to(results)
            if not Path(path).is_file() and not inside:
                raise ConfigError(f"{key}.{what}: no file {path}")


def _parameters(schema: dict, defs: dict) -> list[str]:
    """The property names a remedy's schema allows, its ``allOf`` references' included."""
    names = list(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        target = defs[ref.rsplit("/", 1)[-1]] if ref.startswith("#/$defs/") else part
        names += [n for n in target.get("properties", {}) if n not in names]
    return names


def _model_settings(name: str, entry: dict) -> dict:
    """A ``models`` entry resolved (defaults filled in, per-format checks done): what its
    rules hand the stages. ``{seed}`` placeholders stay until :func:`_for_seed`."""
    key, fmt = f"models.{name}", entry["format"]
    arch = entry.get("arch")
    subset = {"mode": "none", "rand_number": None, "imb_factor": None, "path": None}
    subset.update(entry.get("training_subset") or {})
    if fmt == "fragility" and arch not in (None, *ARCHITECTURES):
        raise ConfigError(f"{key}.arch: {arch!r}; fragility checkpoints name their own (null)")
    if fmt == "ldam_drw":
        arch = arch or "resnet32"
        if arch not in LDAM_DRW_ARCHS:
            raise ConfigError(
                f"{key}.arch: {arch!r} is no LDAM-DRW model; choose one of {list(LDAM_DRW_ARCHS)}"
            )
    if fmt in ("torchvision", "entry_point") and not arch:
        what = "a torchvision model's name" if fmt == "torchvision" else "'module:function'"
        raise ConfigError(f"{key}.arch: the {fmt} format needs {what}")
    if fmt == "entry_point" and ":" not in arch:
        raise ConfigError(
            f"{key}.arch: {arch!r}; write 'package.module:function' or 'file.py:function'"
        )
    if fmt == "entry_point" and entry.get("trust_checkpoint"):
        raise ConfigError(
            f"{key}.trust_checkpoint: an entry point reads its checkpoint itself (it is your "
            "code); remove trust_checkpoint"
        )
    norm = entry.get("normalization")
    if fmt == "entry_point" and norm is None:
        raise ConfigError(f"{key}.normalization: give the mean and std the model was trained with")
    if norm is not None and len(norm["mean"]) != len(norm["std"]):
        raise ConfigError(
            f"{key}.normalization: {len(norm['mean'])} means but {len(norm['std'])} stds"
        )
    if subset["mode"] == "ldam_drw":
        try:
            subset["imb_type"], subset["imb_factor"] = ldam_drw_parameters(
                entry["imbalance"], subset["imb_factor"]
            )
        except ConfigError as error:
            raise ConfigError(f"{key}.training_subset: {error}") from None
    if subset["mode"] == "index_file" and not subset["path"]:
        raise ConfigError(f"{key}.training_subset.path: mode index_file needs the file")
    # only when set: an entry without it keeps its settings (and its outputs) as they were
    trust = {"trust_checkpoint": True} if entry.get("trust_checkpoint") else {}
    return sorted_settings(
        {
            **trust,
            "name": name,
            "format": fmt,
            "arch": arch,
            "options": entry.get("options") or {},
            "checkpoint": entry["checkpoint"],
            "dataset": entry["dataset"],
            "imbalance": entry["imbalance"],
            "trained_with": entry.get("trained_with") or {},
            "normalization": norm,
            "input_size": entry.get("input_size"),
            "channels": entry.get("channels"),
            "training_subset": subset,
        }
    )


def _for_seed(settings: dict, seed: int) -> dict:
    """A model's settings for one seed: ``{seed}`` in its paths replaced, LDAM-DRW's
    ``rand_number`` defaulting to the seed."""
    out = json.loads(json.dumps(settings))
    out["seed"] = seed
    out["checkpoint"] = out["checkpoint"].replace("{seed}", str(seed))
    subset = out["training_subset"]
    if subset["path"]:
        subset["path"] = subset["path"].replace("{seed}", str(seed))
    if subset["mode"] == "ldam_drw" and subset["rand_number"] is None:
        subset["rand_number"] = seed
    return sorted_settings(out)
