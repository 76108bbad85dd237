"""Loading a checkpoint never runs code unless the user says so (fragility.training.checkpoints): a
safe load of weights, plain values and a few harmless types by name; anything else refused
in one line naming the file, what it holds and the opt-in; our own files hold only what a
safe load reads."""

import argparse
import os
import zipfile

import numpy as np
import pytest
import torch
import torch.nn as nn
from ldam_drw import LdamResNet, save_checkpoint

from fragility.cli import main
from fragility.embeddings.external import load_external
from fragility.errors import FragilityError
from fragility.training.checkpoints import UnsafeCheckpoint, check_finite, load_checkpoint, plain
from fragility.training.engine import load_model, save_model, train
from fragility.training.settings import TrainConfig


class WritesAMarker:
    """What a tampered checkpoint may hold: unpickling it calls ``os.system``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _ldam_checkpoint(path, **extra) -> LdamResNet:
    """An LDAM-DRW ResNet-32 saved as its cifar_train.py saves it (DataParallel keys, epoch,
    arch, best_acc1 as a tensor, the optimiser's state after a step), plus ``extra``."""
    torch.manual_seed(0)
    model = LdamResNet(5, n_classes=3, use_norm=True, in_channels=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    optimizer.step()  # momentum buffers in the optimiser's state
    save_checkpoint(model.eval(), path, epoch=30, best_acc1=71.5, optimizer=optimizer)
    if extra:
        state = torch.load(path, weights_only=True)
        torch.save({**state, **extra}, path)
    return model


def _same_function(model: nn.Module, loaded) -> None:
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), model(x), atol=1e-5)


# -- foreign checkpoints ------------------------------------------------------------------------


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "ckpt.pth.tar"
    model = _ldam_checkpoint(path, note=WritesAMarker(marker))
    with pytest.raises(UnsafeCheckpoint) as refused:
        load_external(path, "ldam_drw", name="ldam_r32")
    assert str(refused.value) == (
        f"{path} is refused: besides weights it names posix.system, which loading would run "
        "or build (code of the file's choosing); if you trust whoever made it, set "
        "trust_checkpoint: true on models.ldam_r32 to load it in full"
    )
    assert not marker.exists()
    # the user's opt-in loads it in full: its pickle runs, as they accepted
    loaded = load_external(path, "ldam_drw", trusted=True)
    assert marker.exists()
    _same_function(model, loaded)


def test_ldam_drw_and_torchvision_checkpoints_load_without_an_opt_in(tmp_path):
    import torchvision

    path = tmp_path / "ckpt.pth.tar"
    model = _ldam_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    assert saved["best_acc1"].shape == () and saved["optimizer"]["state"]  # as cifar_train.py
    loaded = load_external(path, "ldam_drw")
    assert loaded.epoch == 30
    _same_function(model, loaded)

    resnet = torchvision.models.resnet18(num_classes=4)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    loaded = load_external(tmp_path / "resnet18.pth", "torchvision", "resnet18")
    assert loaded.model.classifier.out_features == 4


def test_numpy_values_and_an_argparse_namespace_need_no_opt_in(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    args = argparse.Namespace(arch="resnet32", lr=0.1, imb_factor=0.01)
    extra = {
        "args": args,
        "epoch": np.int64(30),
        "best_acc1": np.float64(71.5),
        "cls_num_list": np.array([500, 158, 50]),
        "dtype": np.dtype("float32"),
        "flags": [np.bool_(True), np.float32(0.5)],
    }
    model = _ldam_checkpoint(path, **extra)
    loaded = load_external(path, "ldam_drw")
    assert loaded.epoch == 30  # a numpy integer is an epoch too
    _same_function(model, loaded)
    obj = load_checkpoint(path)
    assert obj["args"] == args and obj["best_acc1"] == 71.5 and obj["dtype"] == np.float32
    assert obj["cls_num_list"].tolist() == [500, 158, 50]


def test_files_pickled_under_numpy_1_name_its_old_module_and_load_too(tmp_path):
    path, old = tmp_path / "new.pt", tmp_path / "old.pt"
    torch.save({"w": torch.ones(2), "acc": np.float64(0.5), "counts": np.arange(3)}, path)
    with zipfile.ZipFile(path) as z, zipfile.ZipFile(old, "w") as out:
        for info in z.infolist():  # protocol 2: module names are text lines, no lengths
            data = z.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            out.writestr(info, data)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(old))
    assert "numpy.core.multiarray.scalar" in names  # what numpy 1 wrote
    obj = load_checkpoint(old)
    assert obj["acc"] == 0.5 and obj["counts"].tolist() == [0, 1, 2]


def test_a_truncated_or_foreign_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    _ldam_checkpoint(path)
    path.write_bytes(path.read_bytes()[:5000])  # a copy cut short
    with pytest.raises(FragilityError) as cut:
        load_external(path, "ldam_drw")
    message = str(cut.value)
    assert message.startswith(f"cannot read checkpoint {path} (truncated or damaged?): ")
    assert "\n" not in message
    path.write_text("not a checkpoint")
    with pytest.raises(FragilityError, match=f"^cannot read checkpoint {path} "):
        load_external(path, "ldam_drw")


def test_nan_or_infinite_weights_are_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    _ldam_checkpoint(path)
    state = torch.load(path, weights_only=True)
    state["state_dict"]["module.layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    state["state_dict"]["module.layer2.0.conv1.weight"][1, 0, 0, 0] = float("inf")
    torch.save(state, path)
    with pytest.raises(FragilityError) as bad:
        load_external(path, "ldam_drw")
    assert str(bad.value) == (
        f"{path}: layer2.0.conv1.weight holds 2 NaN or infinite values; the "
        "checkpoint is damaged or its training diverged"
    )
    check_finite({"w": torch.ones(2), "steps": torch.tensor(3)}, path)  # integers: no check


# -- our own files ---------------------------------------------------------------------------------


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(arch="resnet8", epochs=2, batch_size=16, augment=False, seed=3, **kw)


def test_our_model_pt_and_resume_state_load_with_torch_s_own_safe_load(digit_subsets, tmp_path):
    tr, te = digit_subsets
    cfg = _cfg(mfw={"strength": 0.2})
    result = train(cfg, tr, te, progress=False, resume_path=tmp_path / ".resume.pt")
    save_model(result, cfg, tmp_path / "model.pt", {"run": "digits/exp10/ce/seed3"})
    for name in ("model.pt", ".resume.pt"):  # no allow-list: tensors and plain values only
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / name)) == []
        torch.load(tmp_path / name, weights_only=True)
    model, payload = load_model(tmp_path / "model.pt")
    assert payload["train_config"]["mfw"] == {"strength": 0.2, "power": 1.0, "layer": "stage2"}
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in model.state_dict().items())


def test_plain_turns_numpy_scalars_into_numbers_and_refuses_other_objects():
    state = torch.nn.Linear(2, 2).state_dict()
    obj = {"state": state, "history": [{"bac": np.float64(0.25), "acc": [np.float32(0.5)]}]}
    out = plain(obj)
    assert out["state"] is state  # unchanged containers are kept (with their metadata)
    assert out["history"] == [{"bac": 0.25, "acc": [0.5]}]
    assert type(out["history"][0]["bac"]) is float and type(out["history"][0]["acc"][0]) is float
    with pytest.raises(TypeError, match=r"model.pt\['cfg'\] is a TrainConfig"):
        plain({"cfg": TrainConfig()}, "model.pt")


def _old_model_pt(digit_subsets, path):
    """A model.pt as an older version might have written it: numpy scalars and an object."""
    tr, te = digit_subsets
    cfg = _cfg()
    result = train(cfg, tr, te, progress=False)
    save_model(result, cfg, path, {})
    payload = torch.load(path, weights_only=True)
    payload["metadata"] = {"bac": np.float64(0.5), "args": argparse.Namespace(seed=3)}
    payload["epoch"] = np.int64(2)
    torch.save(payload, path)
    return result


def test_an_old_model_pt_is_one_error_saying_how_to_convert_it(digit_subsets, tmp_path):
    path = tmp_path / "model.pt"
    result = _old_model_pt(digit_subsets, path)
    payload = torch.load(path, weights_only=False)
    payload["metadata"]["opaque"] = WritesAMarker(tmp_path / "MARKER")
    torch.save(payload, tmp_path / "tampered.pt")
    with pytest.raises(FragilityError) as old:
        load_model(tmp_path / "tampered.pt")
    message = str(old.value)
    assert "\n" not in message and "posix.system" in message
    assert "python -m fragility convert-model" in message and "delete it" in message
    assert not (tmp_path / "MARKER").exists()

    # numpy values and a Namespace load safely; the converter makes the file plain
    load_model(path)
    before = path.stat().st_mtime_ns
    assert main(["convert-model", str(path)]) == 0
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    model, payload = load_model(path)
    assert payload["epoch"] == 2 and type(payload["metadata"]["bac"]) is float
    assert payload["metadata"]["args"] == {"seed": 3}
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert path.stat().st_mtime_ns == before  # what was computed from it stays up to date


@pytest.mark.parametrize("content", ["damaged", "unsafe", "not a dict"])
def test_an_unreadable_resume_state_restarts_from_epoch_0_with_a_warning(
    digit_subsets, tmp_path, capsys, content
):
    tr, te = digit_subsets
    cfg = _cfg()
    fresh = train(cfg, tr, te, progress=False)
    state = tmp_path / ".resume.pt"
    if content == "damaged":
        train(cfg, tr, te, progress=False, resume_path=state)
        state.write_bytes(state.read_bytes()[:2000])
    elif content == "unsafe":  # an old state file holding more than a safe load reads
        torch.save({"config_hash": cfg.hash(), "marker": WritesAMarker(tmp_path / "M")}, state)
    else:
        torch.save([cfg.hash()], state)
    capsys.readouterr()
    resumed = train(cfg, tr, te, progress=False, resume_path=state)
    warning = capsys.readouterr().err
    assert f"warning: cannot resume from {state} (" in warning
    assert warning.rstrip().endswith("training starts again from epoch 0")
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert not (tmp_path / "M").exists()
    same = resumed.model.state_dict()
    assert all(torch.equal(v, same[k]) for k, v in fresh.model.state_dict().items())


def test_a_resume_state_that_fails_halfway_leaves_the_fresh_model(digit_subsets, tmp_path):
    tr, te = digit_subsets
    cfg = _cfg()
    fresh = train(cfg, tr, te, progress=False)
    state = tmp_path / ".resume.pt"
    train(cfg, tr, te, progress=False, resume_path=state)
    saved = torch.load(state, weights_only=True)
    saved["optimizer"] = {"state": {}, "param_groups": "garbage"}  # the model loads, this not
    torch.save(saved, state)
    resumed = train(cfg, tr, te, progress=False, resume_path=state)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    same = resumed.model.state_dict()
    assert all(torch.equal(v, same[k]) for k, v in fresh.model.state_dict().items())
