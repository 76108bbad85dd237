"""Models trained elsewhere (config ``models``): a checkpoint of a known format loaded as a
feature extractor and a linear head, which :func:`fragility.embeddings.extraction.write_embeddings`
reads like one of our own models (docs/embeddings.md: FE, the head's weights, ``Σ_h CE + bias =
logits``).

===============  ===========================================================================
format           what the checkpoint holds
===============  ===========================================================================
``fragility``    our own ``model.pt`` (:func:`fragility.training.engine.save_model`)
``ldam_drw``     LDAM-DRW's ``{"state_dict": ..., "epoch": ...}`` of its CIFAR ResNet
                 (``models/resnet_cifar.py``: ``conv1``, ``bn1``, ``layer{1,2,3}.{b}``,
                 ``linear``), keys with or without DataParallel's ``module.``; ``linear`` an
                 ``nn.Linear`` or a ``NormedLinear`` (weight ``(in, out)``, cosine logits)
``torchvision``  a state dict of the torchvision classification model ``arch``; FE is the
                 input of its final Linear layer (``fc``, ``classifier[-1]``, ``heads.head``)
``entry_point``  ``arch = "module:function"`` or ``"path/file.py:function"``, called with the
                 checkpoint's path and ``options``; returns ``(extractor, head)``
===============  ===========================================================================

A state dict that does not fit its architecture is one :class:`FragilityError` naming the
missing and unexpected keys (or the shapes that differ), raised before any weight is copied.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fragility.errors import ConfigError, FragilityError
from fragility.training.checkpoints import check_finite, load_checkpoint
from fragility.training.models import FEATURE_DIM, NormedLinear, ResNetCifar, build_model
from fragility.training.settings import ARCHITECTURES, LDAM_DRW_ARCHS

# the normalisation each format's own training code applies (entry points have none)
LDAM_DRW_NORMALIZATION = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
IMAGENET_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
STATE_KEYS = ("state_dict", "model", "model_state_dict")  # where training scripts put it


class CosineHead(nn.Module):
    """LDAM-DRW's ``NormedLinear``: weight ``(in, out)``, logits the cosines
    ``normalize(fe) @ normalize(weight, dim=0)`` with no scale (its LDAM loss scales them)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())

    def effective_weight(self) -> torch.Tensor:
        """``W (C, H)`` such that ``logits = normalize(fe) @ W.T``."""
        return F.normalize(self.weight, dim=0).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1).mm(F.normalize(self.weight, dim=0))


HEADS = (nn.Linear, CosineHead, NormedLinear)  # linear heads whose CE decomposition we know


class ExternalModel(nn.Module):
    """A feature extractor and a linear head with what the embedding stage reads of
    :class:`fragility.training.models.ResNetCifar`: ``features(x)`` FE ``(N, H)``, ``classifier`` the
    head, ``classifier_weights()`` and ``normed``."""

    def __init__(self, extractor: nn.Module, head: nn.Module):
        super().__init__()
        if not isinstance(head, HEADS):
            raise FragilityError(
                f"the model's head is a {type(head).__name__}; it must be an nn.Linear, "
                "fragility.embeddings.external.CosineHead or fragility.training.models.NormedLinear"
            )
        self.extractor = extractor
        self.classifier = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def normed(self) -> bool:
        return not isinstance(self.classifier, nn.Linear)

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W (C, H), bias (C,))`` with ``logits = fe' @ W.T + bias`` (fe' = FE/‖FE‖ for
        a normed head, whose W carries any scale)."""
        head = self.classifier
        if isinstance(head, nn.Linear):
            weight = head.weight
            bias = head.bias if head.bias is not None else torch.zeros_like(weight[:, 0])
            return weight, bias
        weight = head.effective_weight()
        return weight, torch.zeros(weight.shape[0], device=weight.device, dtype=weight.dtype)


@dataclass
class Loaded:
    """A loaded checkpoint: the model (eval mode), the normalisation it carries (our own
    format), its epoch, the channels its first convolution takes (None: unknown) and its
    architecture's name."""

    model: nn.Module
    normalization: dict | None
    epoch: int | None
    in_channels: int | None
    arch: str


# -- reading checkpoints --------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_of(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint object (under ``state_dict``, ``model`` or
    ``model_state_dict``, or the object itself), without DataParallel's ``module.``."""
    state = obj
    if isinstance(obj, Mapping):
        state = next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        keys = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
        raise FragilityError(
            f"{path} holds no state dict (looked under {', '.join(STATE_KEYS)} and at the "
            f"top level; found {keys})"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _key_list(keys: list[str], most: int = 8) -> str:
    shown = ", ".join(keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


def check_fit(expected: Mapping[str, torch.Tensor], state: Mapping, what: str) -> None:
    """Raise one error unless ``state`` has exactly the keys and shapes of ``expected``."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"missing keys {_key_list(missing)}"] if missing else []
        parts += [f"unexpected keys {_key_list(unexpected)}"] if unexpected else []
        raise FragilityError(f"{what} does not fit its checkpoint: {'; '.join(parts)}")
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise FragilityError(f"{what} does not fit its checkpoint: shapes differ at {wrong}")


def _epoch(obj) -> int | None:
    epoch = obj.get("epoch") if isinstance(obj, Mapping) else None
    return int(epoch) if isinstance(epoch, (int, np.integer)) else None


def first_conv_channels(model: nn.Module) -> int | None:
    return next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), None)


# -- the formats ------------------------------------------------------------------------------


def _load_fragility(path: Path, arch: str | None, options: dict, read_args: dict) -> Loaded:
    """Our own ``model.pt``: rebuilt exactly as :func:`fragility.training.engine.load_model` does."""
    payload = load_checkpoint(path, **read_args)
    need = ("state_dict", "arch", "n_classes", "in_channels", "normed", "normalization")
    missing = [k for k in need if not isinstance(payload, Mapping) or k not in payload]
    if missing:
        raise FragilityError(f"{path} is not a fragility model.pt: it lacks {', '.join(missing)}")
    if payload["arch"] not in ARCHITECTURES or arch not in (None, payload["arch"]):
        raise FragilityError(
            f"{path} holds a {payload['arch']!r} model; arch must be null or that name, one "
            f"of {sorted(ARCHITECTURES)}"
        )
    model = build_model(
        payload["arch"], payload["n_classes"], payload["in_channels"], payload["normed"]
    )
    check_fit(model.state_dict(), payload["state_dict"], f"{payload['arch']} ({path})")
    check_finite(payload["state_dict"], path)
    model.load_state_dict(payload["state_dict"])
    norm = payload["normalization"]
    return Loaded(model.eval(), norm, _epoch(payload), payload["in_channels"], payload["arch"])


def _ldam_drw_name(key: str, blocks: int) -> str:
    """Our ResNetCifar's key -> LDAM-DRW's: ``layers.{j}.x`` -> ``layer{s}.{b}.x``."""
    if not key.startswith("layers."):
        return key
    _, j, rest = key.split(".", 2)
    stage, block = divmod(int(j), blocks)
    return f"layer{stage + 1}.{block}.{rest}"


def _load_ldam_drw(path: Path, arch: str | None, options: dict, read_args: dict) -> Loaded:
    """LDAM-DRW's CIFAR ResNet, mapped onto our ResNetCifar (the same option-A blocks) with
    its ``linear`` head: an ``nn.Linear`` when it has a bias, else its ``NormedLinear``."""
    arch = arch or "resnet32"
    if arch not in LDAM_DRW_ARCHS:
        raise ConfigError(f"unknown LDAM-DRW arch {arch!r}; choose one of {list(LDAM_DRW_ARCHS)}")
    obj = load_checkpoint(path, **read_args)
    state = state_dict_of(obj, path)
    check_finite(state, path)  # named as in the file
    blocks = LDAM_DRW_ARCHS[arch]
    weight = state.get("linear.weight", torch.empty(1, FEATURE_DIM))
    linear = "linear.bias" in state
    n_classes = weight.shape[0] if linear or weight.ndim != 2 else weight.shape[1]
    in_channels = state["conv1.weight"].shape[1] if "conv1.weight" in state else 3
    backbone = ResNetCifar((blocks,) * 3, n_classes, in_channels)
    backbone.classifier = nn.Identity()
    ours = backbone.state_dict()
    names = {_ldam_drw_name(k, blocks): k for k in ours}
    expected = {name: ours[k] for name, k in names.items()}
    head = (
        nn.Linear(FEATURE_DIM, n_classes)
        if linear
        else CosineHead(torch.empty(FEATURE_DIM, n_classes))
    )
    expected.update({f"linear.{k}": v for k, v in head.state_dict().items()})
    check_fit(expected, state, f"LDAM-DRW {arch} ({path})")
    backbone.load_state_dict({k: state[name] for name, k in names.items()})
    head.load_state_dict({k: state[f"linear.{k}"] for k in head.state_dict()})
    return Loaded(ExternalModel(backbone, head).eval(), None, _epoch(obj), in_channels, arch)


def _final_linear(model: nn.Module) -> str | None:
    """The qualified name of the last ``nn.Linear`` of a torchvision classifier."""
    return next(
        (n for n, m in reversed(list(model.named_modules())) if isinstance(m, nn.Linear)), None
    )


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _load_torchvision(path: Path, arch: str | None, options: dict, read_args: dict) -> Loaded:
    """A torchvision classification model ``arch`` (built with ``options``) with the
    checkpoint's class count; FE the input of its final Linear layer."""
    import torchvision  # here: 3 s to import, and only this format needs it

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ConfigError(
            f"unknown torchvision classification model {arch!r}; choose one of {names}"
        )
    obj = load_checkpoint(path, **read_args)
    state = state_dict_of(obj, path)
    check_finite(state, path)
    model = torchvision.models.get_model(arch, weights=None, **options)
    name = _final_linear(model)
    if name is None:
        raise FragilityError(f"{arch} has no final Linear layer; load it through an entry point")
    old, weight = model.get_submodule(name), state.get(f"{name}.weight")
    if weight is not None and weight.ndim == 2 and weight.shape[0] != old.out_features:
        _set_module(model, name, nn.Linear(old.in_features, weight.shape[0], old.bias is not None))
    check_fit(model.state_dict(), state, f"torchvision {arch} ({path})")
    model.load_state_dict(state)
    head = model.get_submodule(name)
    _set_module(model, name, nn.Identity())
    return Loaded(
        ExternalModel(model, head).eval(), None, _epoch(obj), first_conv_channels(model), arch
    )


def entry_point(spec: str | None) -> Callable:
    """The function of ``"package.module:function"`` or ``"path/to/file.py:function"``."""
    module_name, sep, function = (spec or "").rpartition(":")
    if not sep or not module_name or not function:
        raise ConfigError(
            f"entry point {spec!r}: write arch as 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    try:
        if module_name.endswith(".py"):
            loader = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if loader is None or not Path(module_name).is_file():
                raise ImportError(f"no file {module_name}")
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FragilityError(f"entry point {spec!r}: cannot import {module_name} ({exc})") from exc
    fn = getattr(module, function, None)
    if not callable(fn):
        raise FragilityError(f"entry point {spec!r}: {module_name} has no function {function!r}")
    return fn


def _load_entry_point(path: Path, arch: str | None, options: dict, read_args: dict) -> Loaded:
    """``function(checkpoint_path, **options) -> (extractor, head)``: ``extractor(x)`` is FE
    ``(N, H)`` (flattened), ``head`` a linear layer of :data:`HEADS`. The function is the
    user's own code and reads the checkpoint as it likes (``read_args`` do not apply)."""
    result = entry_point(arch)(str(path), **options)
    if not (
        isinstance(result, tuple)
        and len(result) == 2
        and all(isinstance(m, nn.Module) for m in result)
    ):
        raise FragilityError(
            f"entry point {arch!r} returned {type(result).__name__}; it must return "
            "(feature extractor, linear head), two torch modules"
        )
    extractor, head = result
    return Loaded(
        ExternalModel(extractor, head).eval(), None, None, first_conv_channels(extractor), arch
    )


FORMATS: dict[str, Callable[[Path, str | None, dict, dict], Loaded]] = {
    "fragility": _load_fragility,
    "ldam_drw": _load_ldam_drw,
    "torchvision": _load_torchvision,
    "entry_point": _load_entry_point,
}
DEFAULT_NORMALIZATION = {"ldam_drw": LDAM_DRW_NORMALIZATION, "torchvision": IMAGENET_NORMALIZATION}


def load_external(
    path: str | Path,
    fmt: str,
    arch: str | None = None,
    options=None,
    *,
    trusted: bool = False,
    name: str | None = None,
) -> Loaded:
    """Load the checkpoint at ``path`` in format ``fmt`` (:data:`FORMATS`), whole or not
    at all. Without ``trusted`` it is read safely (:func:`fragility.training.checkpoints.load_checkpoint`:
    a file naming more than weights and plain values is refused); with it, in full, running
    what its pickle says. ``name``: the model's entry under ``models``, for the refusal's
    advice. Weights that are NaN or infinite are refused too."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown model format {fmt!r}; choose one of {list(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise FragilityError(f"checkpoint {path} does not exist")
    entry = f"models.{name}" if name else "its entry under models"
    opt_in = f"set trust_checkpoint: true on {entry} to load it in full"
    with torch.no_grad():
        loaded = FORMATS[fmt](
            path, arch, dict(options or {}), {"trusted": trusted, "opt_in": opt_in}
        )
    check_finite(loaded.model.state_dict(), path)  # an entry point's model too
    return loaded


# -- preprocessing ----------------------------------------------------------------------------


def preprocessing(loaded: Loaded, settings: dict, image_shape: tuple[int, int, int]) -> dict:
    """The normalisation of the model's images (``settings["normalization"]``, else the
    checkpoint's own, else its format's), after checking that the dataset's images ``(H, W,
    C)`` have the shape the model takes (``input_size``, ``channels``, its first convolution).
    ``settings``: the model's resolved config entry (``name``, ``dataset``, ``format``, ...)."""
    h, w, c = image_shape
    key, images = (
        f"models.{settings['name']}",
        f"dataset {settings['dataset']} has {h}x{w}x{c} images",
    )
    size = settings.get("input_size")
    if size is not None and tuple(size) != (h, w):
        raise FragilityError(f"{key}.input_size is {size[0]}x{size[1]}, but {images}")
    for what, channels in (
        (f"{key}.channels says the model takes", settings.get("channels")),
        (f"{key}: the model's first convolution takes", loaded.in_channels),
    ):
        if channels is not None and channels != c:
            raise FragilityError(f"{what} {channels}-channel images, but {images}")
    norm = settings.get("normalization") or loaded.normalization
    norm = norm or DEFAULT_NORMALIZATION.get(settings["format"])
    if norm is None:
        raise ConfigError(f"{key}.normalization: give the mean and std the model was trained with")
    if not len(norm["mean"]) == len(norm["std"]) == c:
        raise FragilityError(
            f"{key}.normalization has {len(norm['mean'])} means and {len(norm['std'])} stds, "
            f"but {images}: give one per channel"
        )
    return {"mean": [float(v) for v in norm["mean"]], "std": [float(v) for v in norm["std"]]}


def probe(model: nn.Module, image_shape: tuple[int, int, int], name: str) -> None:
    """Run the model on one blank image: a model that rejects the shape fails here, in one
    line, instead of in the middle of the extraction."""
    h, w, c = image_shape
    model.eval()
    try:
        with torch.no_grad():
            fe = model.features(torch.zeros(1, c, h, w))
            model.classifier(fe)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise FragilityError(
            f"models.{name}: the model rejects {h}x{w}x{c} images ({first})"
        ) from None
