"""`python -m fragility`: one command per stage function, generated from their signatures."""

import importlib
import inspect
import json
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snakemake_cli import REPO

from fragility.catalog.layout import EMBEDDINGS
from fragility.catalog.outputs import RUN_TABLES
from fragility.cli import STAGE_MODULES, main, parser, stages


def test_every_stage_the_workflow_calls_is_a_command_with_its_outputs_last():
    commands = stages()
    for name in STAGE_MODULES:
        module = importlib.import_module(name)
        public = [
            name
            for name, fn in vars(module).items()
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and name[0] != "_"
        ]
        missing = {n for n in public if n.replace("_", "-") not in commands}
        assert missing == set(), f"stages without a command: {missing}"
    scripts = (REPO / "workflow_scripts").glob("*.py")
    called = {m for s in scripts for m in re.findall(r"stages\.\w+ import (\w+)", s.read_text())}
    assert {c.replace("_", "-") for c in called} <= set(commands)  # the curve stages too
    for command, fn in commands.items():  # one output convention
        params = list(inspect.signature(fn).parameters.values())
        positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        if command != "convert-model":  # rewrites its input in place
            assert "outputs" in positional, command


def test_every_argument_of_a_stage_is_an_argument_of_its_command():
    subparsers = next(a for a in parser()._actions if a.dest == "command").choices
    for command, fn in stages().items():
        dests = {a.dest for a in subparsers[command]._actions} - {"help"}
        assert dests == set(inspect.signature(fn).parameters), command


def test_the_stages_chain_from_raw_data_to_a_research_question(tmp_path, capsys):
    npz, split, run = tmp_path / "digits.npz", tmp_path / "split.parquet", tmp_path / "run"
    assert main(["prepare-data", "digits", "{}", str(npz)]) == 0
    args = ["--imbalance", "exp10", "--seed", "0", "--n-max", "30", "--n-val", "5"]
    assert main(["split-dataset", str(npz), str(split), *args]) == 0
    table = pq.read_table(split).to_pandas()
    train = table[table.subset == "train"].label.value_counts().sort_index()
    assert train.tolist() == [int(30 * 10 ** (-i / 9)) for i in range(10)]
    settings = {"arch": "resnet8", "epochs": 1, "batch_size": 64, "flip": False}
    assert main(["model-files", str(run), "model", "history", "metrics", "--list"]) == 0
    outputs = capsys.readouterr().out
    assert json.loads(outputs) == [
        str(run / n) for n in ("model.pt", "history.parquet", "metrics.json")
    ]
    train = ["train-run", str(npz), str(split), outputs, "--settings", json.dumps(settings)]
    train += ["--run-keys", '{"run": "cli"}', "--device", "cpu", "--no-progress"]
    assert main(train) == 0
    metrics = json.loads(capsys.readouterr().out)  # a dict result is printed as JSON
    assert metrics["kept_epoch"] == 1 and len(metrics["per_class_accuracy"]) == 10
    assert main(["model-files", str(run), *EMBEDDINGS, "--list"]) == 0
    embeddings = capsys.readouterr().out
    assert json.loads(embeddings) == [str(run / f"embeddings/{k}.parquet") for k in EMBEDDINGS]
    extract = [str(npz), str(split), str(run / "model.pt"), embeddings]
    assert main(["extract-run", *extract, "--device", "cpu"]) == 0
    assert main(["model-files", str(run)]) == 0  # every file present, kind -> path
    files = json.loads(capsys.readouterr().out)
    assert set(files) == {"model", "history", "metrics", *EMBEDDINGS}
    assert main(["run-tables", "rq3", str(run)]) == 0
    outputs = capsys.readouterr().out
    rq3 = ["analyze-run", json.dumps(files), "rq3", outputs, "--ks", "[2, 7]", "--k-fe", "7"]
    assert main(rq3) == 0
    written = {p.name for p in (run / "rq3").iterdir()}
    assert {
        f"{table}.{ext}" for table in RUN_TABLES["rq3"].tables for ext in ("csv", "parquet")
    } == written
    assert main(["model-files", str(run), "weights"]) == 1  # not a kind of file
    assert "unknown file kinds ['weights']" in capsys.readouterr().err


def test_a_curve_stage_is_a_command_and_writes_each_of_its_outputs(tmp_path):
    """Where each claim starts to hold, from a claims table of one curve: the claim holds
    from R = 10 on, never at R = 2."""
    rows = [
        {"claim": "c", "statement": "s", "dataset": "d", "imbalance": imbalance, "loss": "ce",
         "verdict": verdict, "difference": diff, "ci_low": diff - 0.1, "ci_high": diff + 0.1,
         "n": 3, "interval": "t over 3 seeds"}
        for imbalance, verdict, diff in (("exp2", "fails", -0.5), ("exp10", "holds", 0.4),
                                         ("exp100", "holds", 0.9), ("balanced", "n/a", 0.0))
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "claims.parquet")
    outputs = [str(tmp_path / "smallest.csv"), str(tmp_path / "smallest.parquet")]
    command = ["write-smallest-ratio-table", str(tmp_path / "claims.parquet"), json.dumps(outputs)]
    assert main(command) == 0
    (row,) = pq.read_table(outputs[1]).to_pylist()
    assert (row["smallest_ratio"], row["smallest_imbalance"]) == (10.0, "exp10")
    assert row["holds_at_every_larger_ratio"] is True and row["ratios"] == "2, 10, 100"
    assert (tmp_path / "smallest.csv").read_text().count("\n") == 2  # header and the row


def test_a_stage_error_is_one_line_and_exit_status_1(tmp_path, capsys):
    npz = tmp_path / "digits.npz"
    assert main(["prepare-data", "digits", "{}", str(npz)]) == 0
    args = ["--imbalance", "exp10", "--seed", "0", "--n-max", "500"]
    assert main(["split-dataset", str(npz), str(tmp_path / "s.parquet"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fragility: error: class 0 has ") and err.count("\n") == 1


def test_malformed_json_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["prepare-data", "digits", "{root: x", str(tmp_path / "d.npz")])
    assert info.value.code == 2


def test_python_m_fragility_lists_the_commands():
    done = subprocess.run(
        [sys.executable, "-m", "fragility", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert all(command in done.stdout for command in stages())
