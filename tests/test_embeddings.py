import numpy as np
import pyarrow.parquet as pq
import pytest

from fragility.embeddings import read_classifier, read_embeddings, write_embeddings
from fragility.training import TrainConfig, channel_stats, train


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
    from fragility.models import build_model

    model = build_model("resnet8", 3, 1)
    empty = (np.zeros(0, np.int64), np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, np.int64))
    outputs = {name: tmp_path / f"{name}.parquet" for name in ("val", "classifier")}
    write_embeddings(model, {"mean": [0.5], "std": [0.2]}, {"val": empty}, outputs, {"seed": 0})
    table = pq.read_table(tmp_path / "val.parquet")
    assert table.num_rows == 0
    assert str(table.schema.field("fe").type) == "fixed_size_list<element: float>[64]"
    assert str(table.schema.field("logits").type) == "fixed_size_list<element: float>[3]"
    assert read_embeddings(tmp_path / "val.parquet")["fe"].shape == (0, 64)
