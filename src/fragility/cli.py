"""``python -m fragility``: every stage of the pipeline without Snakemake.

The commands are generated from the stage functions the workflow scripts call
(:mod:`fragility.workflow.stages`: data, training, embeddings, heads, analysis, curves,
figures), so the command line cannot fall behind them: a stage
``split_dataset(canonical_path, outputs, *, imbalance, seed, ...)`` is
``python -m fragility split-dataset CANONICAL_PATH OUTPUTS --imbalance exp100 --seed 0 ...``.
Arguments without a default are positional, the others are options; numbers and flags are
typed, dicts and lists are JSON. Every stage takes its inputs first and then ``OUTPUTS``, the
files it writes: one path, or a JSON list of paths, each file known by its name. Examples::

    python -m fragility prepare-data digits '{}' data/digits.npz
    python -m fragility split-dataset data/digits.npz split.parquet --imbalance exp10 \\
        --seed 0 --n-max 100 --n-val 20
    python -m fragility analyze-run "$(python -m fragility model-files RUN train classifier)" \\
        rq3 "$(python -m fragility run-tables rq3 RUN)" --ks '[2, 3, 5, 7]' --k-fe 7

The Snakemake targets remain the way to run a whole study (README, "What runs").
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

from fragility.catalog import layout, outputs
from fragility.errors import FragilityError

STAGE_MODULES = tuple(
    f"fragility.workflow.stages.{step}"
    for step in ("data", "training", "embeddings", "heads", "analysis", "curves", "figures")
)


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error.msg}): {text!r}") from None


def _json_or_text(text: str):
    """A JSON value, or the text itself when it is not one."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _converter(annotation) -> Callable | None:
    """How a command-line string becomes a value of ``annotation`` (None: not expressible)."""
    if annotation is inspect.Parameter.empty:
        return _json
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):  # X | None, str | Path
        kinds = {_converter(a) for a in args}
        if len(kinds) == 1:
            return kinds.pop()
        if {str, Path} >= set(args):
            return str
        # a name or a value, e.g. class_order: "seeded" or [3, 1, 2]
        return _json_or_text if kinds == {str, _json} else None
    if annotation in (str, Path):
        return str
    if annotation in (int, float, bool):
        return annotation
    if annotation in (dict, list) or origin in (dict, list):
        return _json
    return None


def stages(modules: tuple[str, ...] = STAGE_MODULES) -> dict[str, Callable]:
    """Command name -> stage function: the public functions of ``modules`` whose every
    argument can be given on a command line."""
    found = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn):
                continue
            if fn.__module__ != module_name:
                continue
            hints = typing.get_type_hints(fn)
            params = inspect.signature(fn).parameters.values()
            if all(_converter(hints.get(p.name, p.empty)) for p in params):
                found[name.replace("_", "-")] = fn
    return found


def _add_stage(sub, command: str, fn: Callable) -> None:
    doc = inspect.getdoc(fn) or command
    summary = " ".join(doc.split("\n\n")[0].split())  # the docstring's first paragraph
    parser = sub.add_parser(command, help=summary, description=doc)
    hints = typing.get_type_hints(fn)
    for p in inspect.signature(fn).parameters.values():
        convert = _converter(hints.get(p.name, p.empty))
        option = "--" + p.name.replace("_", "-")
        required = p.default is p.empty
        kind = "JSON" if convert is _json else None
        default = None if required else p.default
        if convert is bool:
            flag = argparse.BooleanOptionalAction
            parser.add_argument(
                option, dest=p.name, action=flag, required=required, default=default
            )
        elif required and p.kind is p.POSITIONAL_OR_KEYWORD:
            parser.add_argument(p.name, type=convert, metavar=p.name.upper(), help=kind)
        else:
            parser.add_argument(
                option, dest=p.name, type=convert, required=required, default=default, help=kind
            )
    parser.set_defaults(stage=fn)


def model_files(run_dir: str, kinds: list[str], as_list: bool = False) -> dict | list:
    """The files ``kinds`` (default: every kind present) of a model folder, kind -> path (a
    stage's inputs), or with ``--list`` their paths (a stage's outputs)."""
    unknown = [k for k in kinds if k not in layout.MODEL_FILES]
    if unknown:
        known = ", ".join(layout.MODEL_FILES)
        raise FragilityError(f"unknown file kinds {unknown}; known: {known}")
    folder = Path(run_dir)
    if kinds:
        files = {kind: str(folder / layout.model_file(kind)) for kind in kinds}
    else:
        present = {k: folder / layout.model_file(k) for k in layout.MODEL_FILES}
        files = {k: str(p) for k, p in present.items() if p.is_file()}
    return list(files.values()) if as_list else files


def run_tables(rq: str, run_dir: str) -> list[str]:
    """The table files research question ``rq`` writes in a model folder (the outputs of
    ``analyze-run``)."""
    if rq not in outputs.RUN_TABLES:
        raise FragilityError(f"unknown research question {rq!r}; one of {list(outputs.RUN_TABLES)}")
    return [
        f"{run_dir}/{rq}/{table}.{ext}"
        for table in outputs.RUN_TABLES[rq].tables
        for ext in ("csv", "parquet")
    ]


def _add_catalog_commands(sub) -> None:
    files = sub.add_parser("model-files", help=inspect.getdoc(model_files))
    files.add_argument("run_dir", metavar="RUN_DIR")
    files.add_argument("kinds", nargs="*", metavar="KIND")
    files.add_argument("--list", dest="as_list", action="store_true", help="paths only")
    files.set_defaults(stage=model_files)
    tables = sub.add_parser("run-tables", help=inspect.getdoc(run_tables))
    tables.add_argument("rq", metavar="RQ")
    tables.add_argument("run_dir", metavar="RUN_DIR")
    tables.set_defaults(stage=run_tables)


def parser(
    modules: tuple[str, ...] = STAGE_MODULES, prog: str = "fragility"
) -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, fn in stages(modules).items():
        _add_stage(sub, command, fn)
    _add_catalog_commands(sub)
    return top


def main(
    argv: list[str] | None = None,
    modules: tuple[str, ...] = STAGE_MODULES,
    prog: str = "fragility",
) -> int:
    """Run the command ``argv`` names (default: the process's arguments) among the stages of
    ``modules``; 0 on success, 1 with one line on stderr for a :class:`FragilityError`."""
    args = vars(parser(modules, prog).parse_args(argv))
    stage, _ = args.pop("stage"), args.pop("command")
    try:
        result = stage(**args)
    except FragilityError as error:
        print(f"fragility: error: {error}", file=sys.stderr)
        return 1
    if isinstance(result, dict | list):  # a training's metrics, a run's files
        print(json.dumps(result, indent=1, default=str))
    return 0
