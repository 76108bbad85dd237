import numpy as np
import pyarrow.parquet as pq
import pytest

from fragility.embeddings.extraction import write_embeddings
from fragility.embeddings.files import read_classifier, read_embeddings
from fragility.training.engine import channel_stats, train
from fragility.training.settings import TrainConfig


@pytest.mark.parametrize("loss", ["ce", "ldam"])
def test_embedding_files_follow_the_spec_and_decompose_into_logits(digit_subsets, tmp_path, loss):
    tr, te = digit_subsets
    cfg = TrainConfig(arch="resnet8", epochs=1, batch_size=16, loss=loss, flip=False, seed=1)
    result = train(cfg, tr, te, progress=False)
    mean, std = channel_stats(tr.x)
    meta = {"dataset": "digits", "imbalance": "balanced", "loss": loss, "seed": 1, "epoch": 1,
            "arch": "resnet8", "config_hash": cfg.hash()}  # fmt: skip
    index = np.arange(len(te.y)) + 100
    write_embeddings(
        result.model,
        {"mean": mean, "std": std},
        {"test": (index, te.x, te.y)},
        {"test": tmp_path / "test.parquet", "classifier": tmp_path / "classifier.parquet"},
        meta,
    )

    table = pq.read_table(tmp_path / "test.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["index"] == types["label"] == types["pred"] == "int64"
    assert types["fe"] == "fixed_size_list<element: float>[64]"
    assert types["logits"] == "fixed_size_list<element: float>[3]"
    file_meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert {"dataset", "imbalance", "loss", "seed", "epoch", "arch", "config_hash"} <= set(
        file_meta
    )
    assert file_meta["normed"] == ("true" if loss == "ldam" else "false")

    emb = read_embeddings(tmp_path / "test.parquet")
    clf = read_classifier(tmp_path / "classifier.parquet")
    assert np.array_equal(emb["index"], index) and np.array_equal(emb["label"], te.y)
    assert np.array_equal(emb["pred"], emb["logits"].argmax(1))
    fe = emb["fe"].astype(np.float64)
    if clf["normed"]:
        fe = fe / np.linalg.norm(fe, axis=1, keepdims=True)
    ce = fe[:, None, :] * clf["weight"][None, :, :]  # CE[n, c, h]
    rebuilt = ce.sum(axis=2) + clf["bias"]
    np.testing.assert_allclose(
        rebuilt, emb["logits"], rtol=1e-4, atol=1e-4 * np.abs(emb["logits"]).max()
    )
    # the model's own test predictions agree with the embedding file
    assert np.mean(emb["pred"] == te.y) == pytest.approx(result.metrics["accuracy"])


def test_an_empty_subset_gives_an_empty_well_typed_file(tmp_path):
    from fragility.training.models import build_model

    model = build_model("resnet8", 3, 1)
    empty = (np.zeros(0, np.int64), np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64))
    outputs = {name: tmp_path / f"{name}.parquet" for name in ("val", "classifier")}
    write_embeddings(model, {"mean": [0.5], "std": [0.2]}, {"val": empty}, outputs, {"seed": 0})
    table = pq.read_table(tmp_path / "val.parquet")
    assert table.num_rows == 0
    assert str(table.schema.field("fe").type) == "fixed_size_list<element: float>[64]"
    assert str(table.schema.field("logits").type) == "fixed_size_list<element: float>[3]"
    assert read_embeddings(tmp_path / "val.parquet")["fe"].shape == (0, 64)


def test_the_decomposition_error_is_the_largest_miss_over_the_largest_logit():
    from fragility.embeddings.files import decomposition_error

    fe, W, bias = np.array([[1.0, 2.0]]), np.eye(2), np.array([0.5, -0.5])  # logits 1.5, 1.5
    assert decomposition_error(fe, [[1.5, 1.5]], W, bias) == 0.0
    assert decomposition_error(fe, [[1.5, 1.6]], W, bias) == pytest.approx(0.1 / 1.6)
    # normed: fe' = (3, 4) / 5, and W carries the scale
    assert decomposition_error([[3.0, 4.0]], [[6.0, 8.0]], 10 * np.eye(2), [0, 0], True) == 0
    assert decomposition_error(np.zeros((0, 2)), np.zeros((0, 2)), W, bias) == 0.0


def test_an_extraction_whose_precision_was_changed_stops_before_writing(
    digit_subsets, tmp_path, monkeypatch
):
    """Force bf16 into the extraction (trunk and head, as a GPU did before the precision
    policy): the runtime check refuses it in one line naming the run and the error."""
    import torch

    from fragility.embeddings.files import DecompositionError
    from fragility.training import precision
    from fragility.training.precision import Precision

    class Bf16Everywhere(Precision):
        def head_context(self):
            return torch.autocast(self.device_type, dtype=torch.bfloat16)

    tr, te = digit_subsets
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=16, loss="ldam", seed=1)
    result = train(cfg, tr, te, progress=False)
    mean, std = channel_stats(tr.x)
    outputs = {"test": tmp_path / "test.parquet", "classifier": tmp_path / "classifier.parquet"}
    subsets = {"test": (np.arange(len(te.y)), te.x, te.y)}
    meta = {"dataset": "digits", "imbalance": "balanced", "loss": "ldam", "seed": 1}
    forced = Bf16Everywhere("cpu", torch.bfloat16)
    monkeypatch.setattr(precision, "exact", lambda device: forced)
    with pytest.raises(DecompositionError) as stopped:
        write_embeddings(result.model, {"mean": mean, "std": std}, subsets, outputs, meta)
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("digits/balanced/ldam/seed1: test embeddings break")
    error = float(message.split("relative error ")[1].split()[0])
    assert 1e-4 < error < 0.1  # bf16 rounding: about 2^-8 of the largest logit
    assert not outputs["test"].exists() and not outputs["classifier"].exists()
    monkeypatch.undo()  # float32 again: the same model passes
    write_embeddings(result.model, {"mean": mean, "std": std}, subsets, outputs, meta)
    assert outputs["test"].exists()
