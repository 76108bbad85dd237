"""End-to-end runs of the real Snakemake workflow on the smoke preset (digits, seconds)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import toy_entries
import yaml
from snakemake_cli import REPO, SMOKE, run_snakemake

from fragility.catalog.claims import CLAIMS
from fragility.catalog.outputs import CROSS_RUN_FIGURES, CROSS_RUN_TABLES, RUN_FIGURES, RUN_TABLES

RUNS = ["digits/balanced/ce/seed0", "digits/exp10/ce/seed0", "digits/exp10/ldam_drw/seed0"]


def snakemake(
    workdir: Path, *args: str, configfile: Path = SMOKE, pythonpath=()
) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, configfile, *args, pythonpath=pythonpath)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    counts, in_table = {}, False
    for line in result.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and parts[:1] == ["total"]:
            break
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (workdir / "snakemake.log").write_text(result.stdout + result.stderr)
    return workdir


def most_at_once(log: str, rule: str) -> int:
    """The most jobs of ``rule`` running at the same time, from Snakemake's log: a job starts
    at its ``rule NAME:`` block (its ``jobid: N`` line) and ends at ``Finished jobid: N``."""
    running, most, starting = set(), 0, False
    for line in log.splitlines():
        text = line.strip()
        if re.fullmatch(rf"(local)?rule {rule}:", text):
            starting = True
        elif starting and text.startswith("jobid:"):
            running.add(int(text.split()[1]))
            most, starting = max(most, len(running)), False
        elif m := re.match(r"Finished jobid: (\d+)", text):
            running.discard(int(m.group(1)))
    return most


@pytest.mark.slow
def test_smoke_preset_produces_every_run_output(smoke_run):
    for run in RUNS:
        out = smoke_run / "results" / run
        metrics = json.loads((out / "metrics.json").read_text())
        assert {
            "bac",
            "macro_f1",
            "gmean",
            "per_class_accuracy",
            "kept_epoch",
            "wall_seconds",
        } <= set(metrics)
        assert len(metrics["per_class_accuracy"]) == 10
        assert metrics["select"] == "test_bac"
        history = pq.read_table(out / "history.parquet")
        assert history.num_rows == 3
        assert {"lr", "loss", "train_acc", "val_acc", "test_acc", "test_bac", "seconds"} <= set(
            history.column_names
        )
        assert (out / "model.pt").stat().st_size > 10_000
        assert not (out / ".resume.pt").exists()  # removed once the run is complete
        log = (smoke_run / "results/logs/train" / (run + ".log")).read_text()
        assert "3/3" in log and "kept epoch" in log  # the progress bar reached the rule's log
    split = pq.read_table(smoke_run / "results/digits/exp10/split_seed0.parquet")
    assert str(split.schema.field("index").type) == "int64"
    assert str(split.schema.field("subset").type) == "string"
    counts = {}
    for label, subset in zip(split.column("label").to_pylist(), split.column("subset").to_pylist()):
        if subset == "train":
            counts[label] = counts.get(label, 0) + 1
    # exp10 over 10 classes with n_max 100: int(100 * 10 ** (-i / 9))
    assert [counts[c] for c in range(10)] == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    assert (smoke_run / "results/benchmarks/train/digits/exp10/ce/seed0.tsv").exists()


@pytest.mark.slow
def test_second_invocation_has_nothing_to_do(smoke_run):
    result = snakemake(smoke_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_smoke_preset_produces_every_table_figure_and_claim(smoke_run):
    results = smoke_run / "results"
    for run in RUNS:
        for rq, tables in ((rq, spec.tables) for rq, spec in RUN_TABLES.items()):
            for table in tables:
                assert (results / run / rq / f"{table}.csv").stat().st_size > 0
                assert pq.read_table(results / run / rq / f"{table}.parquet").num_rows > 0
        for name, spec in RUN_FIGURES.items():
            assert (results / run / spec.rq / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        emb = results / run / "embeddings"
        assert {p.name for p in emb.iterdir()} == {
            "train.parquet", "pool.parquet", "val.parquet", "test.parquet", "classifier.parquet"
        }  # fmt: skip
    retrained = pq.read_table(results / "digits/exp10/ce/seed0/rq1/retrained.parquet").to_pylist()[
        0
    ]
    metrics = json.loads((results / "digits/exp10/ce/seed0/metrics.json").read_text())
    assert retrained["bac_model"] == pytest.approx(metrics["bac"])  # embeddings = kept checkpoint
    for name in CROSS_RUN_TABLES:
        summary = pq.read_table(results / "tables" / f"{name}.parquet")
        by_seed = pq.read_table(results / "tables" / f"{name}_by_seed.parquet")
        assert summary.num_rows > 0 and by_seed.num_rows >= summary.num_rows
    table1 = pq.read_table(results / "tables/table1.parquet").to_pylist()
    assert {(r["imbalance"], r["loss"]) for r in table1} == {("exp10", "ce"), ("exp10", "ldam_drw")}
    assert all(r["balanced_loss"] == "ce" for r in table1)
    lines = (results / "tables/claims.csv").read_text().splitlines()
    assert len(lines) == 1 + len(CLAIMS) * 2  # header + each claim for the two imbalanced runs
    assert "digits/exp10/ce" in (results / "tables/claims.txt").read_text()
    meta = pq.read_metadata(results / "digits/exp10/ce/seed0/embeddings/test.parquet").metadata
    assert {b"config_hash", b"code_version", b"device", b"seed"} <= set(meta)  # provenance
    provenance = (results / "tables/provenance.csv").read_text().splitlines()
    assert len(provenance) == 1 + len(RUNS) and "code_version" in provenance[0]
    for name in CROSS_RUN_FIGURES:
        assert (results / "figures" / f"{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_smoke_preset_compares_remedies_with_the_untreated_model(smoke_run):
    results = smoke_run / "results"
    rows = pq.read_table(results / "tables/remedies_by_seed.parquet").to_pylist()
    kinds = {r["remedy"]: r["kind"] for r in rows}
    assert kinds == {
        "none": "untreated",
        "eos": "feature-space",
        "crt": "feature-space",
        "tau_norm": "feature-space",
        "logit_adjust": "feature-space",
        "ldam_drw": "loss-level",
    }
    base = json.loads((results / "digits/exp10/ce/seed0/metrics.json").read_text())
    assert rows[0]["bac"] == pytest.approx(base["bac"])
    for name in ("eos", "crt", "tau_norm", "logit_adjust"):
        folder = results / "digits/exp10/ce/seed0/remedies" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["method"] == name and 0 <= metrics["bac"] <= 1
        test = pq.read_table(folder / "embeddings/test.parquet")
        assert test.num_rows == 300  # the run's balanced test set, 30 per class
    tau = json.loads((results / "digits/exp10/ce/seed0/remedies/tau_norm/metrics.json").read_text())
    assert tau["info"]["tau_source"] == "val"  # chosen on the validation split, never on test
    assert (results / "figures/remedies_bac_vs_cost.png").stat().st_size > 1000
    # the RQ analyses run on a remedied model like on any other
    gap = pq.read_table(
        results / "digits/exp10/ce/seed0/remedies/eos/rq7/generalization_gap.parquet"
    )
    assert gap.num_rows == 1 and gap["frobenius_train_vs_tp"][0].as_py() >= 0


@pytest.mark.slow
def test_report_holds_every_figure_with_its_caption(smoke_run):
    result = snakemake(smoke_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (smoke_run / "report.html").read_text()
    for spec in RUN_FIGURES.values():
        assert spec.caption[:60] in html


@pytest.mark.slow
def test_a_caption_edit_reruns_nothing_and_reaches_the_report(smoke_run, tmp_path):
    """Captions reach the report from the catalog, not through params (a rerun trigger)."""
    study = tmp_path / "study"
    shutil.copytree(smoke_run, study, symlinks=True)  # times and Snakemake's records kept
    edited = "An edited caption of the class-mean ce figure, to prove the report reads it."
    patch = f"""
from fragility.catalog import outputs
import dataclasses
spec = outputs.RUN_FIGURES["fig4_class_mean_ce"]
outputs.RUN_FIGURES["fig4_class_mean_ce"] = dataclasses.replace(spec, caption={edited!r})
"""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(patch)
    dry = snakemake(study, "-n", pythonpath=(site,))
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry) == {} and "Nothing to be done" in dry.stdout + dry.stderr
    report = snakemake(study, "--report", "report.html", pythonpath=(site,))
    assert report.returncode == 0, report.stderr[-3000:]
    assert edited in (study / "report.html").read_text()


@pytest.mark.slow
def test_a_table_and_a_figure_declared_once_reach_the_report(smoke_run, tmp_path):
    """A toy per-run table and its figure, registered in the catalog alone
    (tests/toy_entries.py), are made for a finished study and shown in its report."""
    study = tmp_path / "study"
    shutil.copytree(smoke_run, study, symlinks=True)
    site = toy_entries.site_folder(tmp_path / "site")
    paths = (site, REPO / "tests")
    planned = planned_jobs(snakemake(study, "-n", pythonpath=paths))
    assert planned == {"analyze_rq8": 3, "plot_run_figure": 3, "all": 1}  # nothing else
    assert snakemake(study, pythonpath=paths).returncode == 0
    table = pq.read_table(study / "results/digits/exp10/ce/seed0/rq8/toy_means.parquet")
    assert table.column_names == ["class", "mean_fe_norm"] and table.num_rows == 10
    report = snakemake(study, "--report", "report.html", pythonpath=paths)
    assert report.returncode == 0, report.stderr[-3000:]
    assert toy_entries.TOY_CAPTION in (study / "report.html").read_text()


@pytest.mark.slow
def test_a_deleted_figure_is_rebuilt_alone(smoke_run):
    figure = smoke_run / "results/digits/exp10/ce/seed0/rq4/fig4_class_mean_ce.png"
    figure.unlink()
    target = str(figure.relative_to(smoke_run))
    assert planned_jobs(snakemake(smoke_run, "-n", target)) == {"plot_run_figure": 1}
    assert planned_jobs(snakemake(smoke_run, "-n")) == {"plot_run_figure": 1, "all": 1}
    assert snakemake(smoke_run, target).returncode == 0
    assert figure.exists()


def test_one_figure_builds_only_what_it_needs(tmp_path):
    result = snakemake(tmp_path, "-n", "results/digits/exp10/ce/seed0/rq4/fig4_class_mean_ce.png")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == {
        "prepare_dataset": 1,
        "make_split": 1,
        "train_model": 1,
        "extract_embeddings": 1,
        "analyze_rq4": 1,
        "plot_run_figure": 1,
    }


def test_a_figure_under_the_wrong_question_is_refused(tmp_path):
    result = snakemake(tmp_path, "-n", "results/digits/exp10/ce/seed0/rq2/fig4_class_mean_ce.png")
    assert result.returncode != 0
    assert "belongs under rq4/" in result.stdout + result.stderr


@pytest.mark.slow
def test_changing_one_loss_setting_reruns_only_that_run(smoke_run, tmp_path):
    config = yaml.safe_load(SMOKE.read_text())
    config["losses"]["ldam_drw"]["ldam_max_margin"] = 0.3
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    result = snakemake(smoke_run, "-n", configfile=changed)
    assert result.returncode == 0, result.stderr
    planned = planned_jobs(result)
    # that run and what depends on it: its own analyses, and the cross-run tables
    for rule in ("train_model", "extract_embeddings", "retrain_classifier", "analyze_rq2"):
        assert planned.pop(rule) == 1, rule
    assert planned.pop("plot_run_figure") == len(RUN_FIGURES)
    assert not {"prepare_dataset", "make_split"} & set(planned)
    for line in result.stdout.splitlines():
        if line.strip().startswith("output:") and "/seed0/" in line:
            assert "exp10/ldam_drw/seed0" in line, line


@pytest.mark.slow
def test_deleted_output_is_rebuilt_alone(smoke_run):
    (smoke_run / "results/digits/exp10/split_seed0.parquet").unlink()
    result = snakemake(smoke_run, "-n", "results/digits/exp10/split_seed0.parquet")
    assert planned_jobs(result) == {"make_split": 1}


def _write(tmp_path, config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _smoke_config():
    return yaml.safe_load(SMOKE.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["runs"][0].update(loss=["hinge"]), "unknown loss 'hinge'"),
        (lambda c: c["runs"][0].update(dataset="mnist"), "not configured under 'datasets'"),
        (lambda c: c["runs"][0].update(imbalance=["exp"]), "'exp' does not match"),
        (lambda c: c["training"].update(epoch=3), "Additional properties are not allowed"),
        (lambda c: c["training"].update(arch="vgg"), "'vgg' is not one of"),
        (lambda c: c["datasets"]["digits"].update(loader="mnist"), "has no loader 'mnist'"),
    ],
)
def test_config_errors_stop_before_anything_runs(tmp_path, edit, message):
    config = _smoke_config()
    edit(config)
    result = snakemake(tmp_path, "-n", configfile=_write(tmp_path, config))
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def _image_folder_config(root):
    config = _smoke_config()
    split = config["datasets"]["digits"]["split"]  # n_val > 0: the preset's tau_norm needs it
    config["datasets"] = {"mine": {"loader": "image_folder", "root": str(root), "split": split}}
    for group in config["runs"]:
        group["dataset"] = "mine"
    return config


def test_a_missing_image_folder_is_a_config_error_before_any_job(tmp_path):
    config = _image_folder_config(tmp_path / "nowhere")
    result = snakemake(tmp_path, configfile=_write(tmp_path, config))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("config error")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert errors[0].startswith("config error: datasets.mine.root: image_folder: dataset not")
    assert f"in: {tmp_path / 'nowhere'}. To get it: arrange your images as" in errors[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_a_dataset_that_fails_in_its_job_is_one_clear_message_and_no_partial_file(tmp_path):
    for split in ("train", "test"):  # the folders are there, the class folders are not
        (tmp_path / "images" / split).mkdir(parents=True)
    config = _image_folder_config(tmp_path / "images")
    result = snakemake(tmp_path, configfile=_write(tmp_path, config))
    assert result.returncode != 0
    log = (tmp_path / "results/logs/data/mine.log").read_text()
    assert log.startswith("error: image_folder: ") and "same non-empty set of class" in log
    assert "Traceback" not in log
    # profiles/default shows a failed job's log on the console (show-failed-logs)
    shown = f"Logfile results/logs/data/mine.log:\n{'=' * 80}\n{log}"
    assert shown in result.stdout + result.stderr
    assert not list(tmp_path.glob("data/*"))  # no canonical file, not even a temporary one


def test_n_max_larger_than_the_data_stops_before_anything_runs(tmp_path):
    # digits' sizes are known without reading it (fragility.workflow.config.KNOWN_SIZES); for an
    # image folder the split job says the same (tests/test_splits.py)
    config = _smoke_config()
    config["datasets"]["digits"]["split"]["n_max"] = 170
    result = snakemake(tmp_path, configfile=_write(tmp_path, config))
    assert result.returncode != 0
    assert "config error: datasets.digits.split.n_max: n_max=170 + n_val=20 = 190" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_readme_pandas_one_liner_reads_the_embeddings(smoke_run):
    """The README's one-liner, pointed at the smoke run, works without project code."""
    readme = (REPO / "README.md").read_text()
    line = next(x for x in readme.splitlines() if "pd.read_parquet" in x)
    code = (
        line.split('-c "', 1)[1]
        .rsplit('"', 1)[0]
        .replace("fashion_mnist", "digits")
        .replace("exp100", "exp10")
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=smoke_run, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "['index', 'label', 'pred', 'fe', 'logits']" in result.stdout


def test_dryrun_bench_times_the_whole_planned_workflow(tmp_path):
    out = tmp_path / "dry.json"
    bench = [sys.executable, str(REPO / "bench" / "dryrun_speed.py")]
    args = ["--configfile", str(SMOKE), "--repeats", "1", "--json", str(out)]
    done = subprocess.run([*bench, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    # the bench plans the same jobs as a dry run of the preset in an empty folder
    assert report["jobs_planned"] == sum(planned_jobs(snakemake(fresh, "-n")).values()) > 0
    medians = report["medians"]
    assert set(medians) == {"snakemake --version", "one-rule workflow -n", "our workflow -n"}
    assert report["ratio"] == pytest.approx(medians["our workflow -n"] / 3.0)
    assert f"ratio = our dry run / 3 s = {report['ratio']:.2f}" in done.stdout


def _planned(text: str, rule: str) -> list[dict]:
    """Each planned job of ``rule`` in a dry run's output: its ``threads`` and ``resources``."""
    jobs, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if re.fullmatch(r"(local)?rule \w+:", line):  # a job's block starts
            current = {} if re.fullmatch(rf"(local)?rule {rule}:", line) else None
            if current is not None:
                jobs.append(current)
        elif current is not None and line.startswith(("threads:", "resources:")):
            key, _, value = line.partition(": ")
            current[key] = value
    return jobs


@pytest.mark.slow
def test_the_gpu_resource_counts_gpu_jobs_and_cpu_trainings_run_side_by_side(smoke_run, tmp_path):
    # this machine has no GPU: trainings count no `gpu`, so --resources gpu=1 does not hold
    # them back; they run side by side as --cores 2 allows, one torch thread each, so their
    # weights do not depend on --cores
    assert most_at_once((smoke_run / "snakemake.log").read_text(), "train_model") == 2
    for run in RUNS:
        metrics = json.loads((smoke_run / "results" / run / "metrics.json").read_text())
        assert metrics["environment"]["torch_threads"] == 1, run
    # with a GPU (device: cuda; planned only, there is none here) every training and
    # extraction asks for one gpu slot and two threads: --resources gpu=N then runs N at once
    planned = run_snakemake(tmp_path, SMOKE, "-n", "--config", "device=cuda", cores=4, gpus=1)
    assert planned.returncode == 0, planned.stderr[-3000:]
    for rule in ("train_model", "extract_embeddings"):
        jobs = _planned(planned.stdout, rule)
        assert jobs and all(j["threads"] == "2" and "gpu=1" in j["resources"] for j in jobs)
    cpu = run_snakemake(tmp_path, SMOKE, "-n", "--config", "device=cpu", cores=4, gpus=1)
    jobs = _planned(cpu.stdout, "train_model")  # (a dry run prints no "threads: 1")
    assert jobs and all(j.get("threads", "1") == "1" and "gpu=0" in j["resources"] for j in jobs)
