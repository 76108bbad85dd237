"""Which dtype each part of a model computes in: the one place that decides it.

Training splits a model in two. The convolutional *trunk* (normalisation and ``features``)
carries nearly all the arithmetic; the classifier *head* maps FE to logits.

* **Trunk**: bfloat16 autocast on CUDA devices of compute capability 8.0 or more (Ampere and
  later: A100, H100, RTX 30xx, L4, ...), where bf16 tensor cores are native and roughly
  double the speed; float32 everywhere else (CPUs, and V100, T4 or RTX 20xx GPUs, which have
  no bf16 units: torch emulates it slowly there or refuses it). The config's ``precision``
  overrides the choice (``float32``, ``bfloat16``); ``auto`` is this rule.
* **Head**: always float32, from the trunk's FE cast to float32. Rounded to bf16 the logits
  move in steps of 2⁻⁷ of their size (0.125 at LDAM's scale of 30); ties then go to the
  lowest class index, i.e. the majority, and the per-epoch accuracies lean towards it.
* **The kept checkpoint** is evaluated, and its embeddings extracted, entirely in float32
  (:func:`exact`), whatever the training used: then ``metrics.json`` and the embeddings'
  ``pred`` agree exactly, and ``Σ_h CE + bias = logits`` holds to float32 rounding.
  Per-epoch evaluations (the history, the checkpoint choice) use the training precision.

"float32" means float32: on CUDA its context also switches TF32 off (cuDNN uses TF32 for
float32 convolutions by default on Ampere), so that a float32 extraction on a GPU agrees with
one on a CPU to float32 rounding, not to TF32's 10-bit mantissa.

Tests inject a :class:`Precision` (or ``precision="bfloat16"``) to run the GPU policy on a
CPU, where torch has bf16 autocast too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from fragility.errors import ConfigError

SETTINGS = ("auto", "float32", "bfloat16")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# the first CUDA compute capability with native bf16 arithmetic (Ampere)
BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Precision:
    """The dtypes one device computes in: ``trunk`` (float32 or bfloat16) for the
    convolutional trunk; the head is float32 in every policy."""

    device_type: str  # "cpu" or "cuda": the autocast device
    trunk: torch.dtype = torch.float32

    @property
    def name(self) -> str:
        """The trunk's dtype as the config spells it (``float32``, ``bfloat16``)."""
        return str(self.trunk).removeprefix("torch.")

    def trunk_context(self) -> contextlib.AbstractContextManager:
        """Around a trunk forward: autocast to the trunk's dtype, or plain float32."""
        if self.trunk == torch.float32:
            return full_float32(self.device_type)
        return torch.autocast(self.device_type, dtype=self.trunk)

    def head_context(self) -> contextlib.AbstractContextManager:
        """Around the head's forward (give it FE cast to float32): always float32."""
        return full_float32(self.device_type)


@contextlib.contextmanager
def full_float32(device_type: str) -> Iterator[None]:
    """Autocast off (also inside an enclosing autocast) and, on CUDA, TF32 off."""
    with torch.autocast(device_type, enabled=False):
        if device_type != "cuda":
            yield
            return
        cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
        before = cudnn.allow_tf32, matmul.allow_tf32
        cudnn.allow_tf32 = matmul.allow_tf32 = False
        try:
            yield
        finally:
            cudnn.allow_tf32, matmul.allow_tf32 = before


def trunk_dtype(device: torch.device, setting: str = "auto") -> torch.dtype:
    """The trunk's compute dtype on ``device`` for the config's ``precision`` setting."""
    if setting not in SETTINGS:
        raise ConfigError(f"precision must be one of {list(SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return _DTYPES[setting]
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= BF16_CAPABILITY:
        return torch.bfloat16
    return torch.float32


def training(device: torch.device, setting: str | Precision = "auto") -> Precision:
    """The policy a training on ``device`` runs under (a :class:`Precision` passes through,
    which is how tests inject the GPU policy on a CPU)."""
    if isinstance(setting, Precision):
        return setting
    return Precision(device.type, trunk_dtype(device, setting))


def exact(device: torch.device) -> Precision:
    """float32 everywhere: the kept checkpoint's evaluation and every extraction."""
    return Precision(device.type, torch.float32)
