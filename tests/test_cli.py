"""`python -m fragility`: one command per stage function, generated from their signatures."""

import inspect
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

import fragility.workflow.analysis_stages
import fragility.workflow.stages
from fragility.catalog.layout import EMBEDDINGS
from fragility.catalog.outputs import RUN_TABLES
from fragility.cli import main, parser, stages


def test_every_stage_the_workflow_calls_is_a_command():
    commands = stages()
    for module in (fragility.workflow.stages, fragility.workflow.analysis_stages):
        public = [
            name
            for name, fn in vars(module).items()
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and name[0] != "_"
        ]
        # load_subsets takes in-memory arrays: the one helper that is no file-in/file-out stage
        missing = {n for n in public if n.replace("_", "-") not in commands} - {"load_subsets"}
        assert missing == set(), f"stages without a command: {missing}"
    assert {"prepare-data", "split-dataset", "train-run", "extract-run", "remedy-run"} <= set(
        commands
    )


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
    outputs = {"model": "model.pt", "history": "history.parquet", "metrics": "metrics.json"}
    train = ["train-run", str(npz), str(split), "--settings", json.dumps(settings)]
    train += [f"--{kind}-path={run / name}" for kind, name in outputs.items()]
    train += ["--run-info", '{"run": "cli"}', "--device", "cpu", "--no-progress"]
    assert main(train) == 0
    metrics = json.loads(capsys.readouterr().out)  # a dict result is printed as JSON
    assert metrics["kept_epoch"] == 1 and len(metrics["per_class_accuracy"]) == 10
    assert main(["run-files", str(run), *EMBEDDINGS]) == 0
    embeddings = capsys.readouterr().out
    assert json.loads(embeddings) == {k: str(run / f"embeddings/{k}.parquet") for k in EMBEDDINGS}
    extract = [str(npz), str(split), str(run / "model.pt"), embeddings]
    assert main(["extract-run", *extract, "--device", "cpu"]) == 0
    assert main(["run-files", str(run)]) == 0  # every file present
    files = json.loads(capsys.readouterr().out)
    assert set(files) == {"model", "history", "metrics", *EMBEDDINGS}
    assert main(["run-outputs", "rq3", str(run)]) == 0
    outputs = capsys.readouterr().out
    rq3 = ["analyze-run", json.dumps(files), "rq3", outputs, "--ks", "[2, 7]", "--k-fe", "7"]
    assert main(rq3) == 0
    written = {p.name for p in (run / "rq3").iterdir()}
    assert {
        f"{table}.{ext}" for table in RUN_TABLES["rq3"].tables for ext in ("csv", "parquet")
    } == written
    assert main(["run-files", str(run), "weights"]) == 1  # not a kind of file
    assert "unknown file kinds ['weights']" in capsys.readouterr().err


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
