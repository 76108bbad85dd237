"""MkDocs hook: fill the documentation's tables from the one place each list is declared.

A page holds a marker such as ``<!-- claims-table -->`` on a line of its own; this hook
replaces it with Markdown built from the code or the schema, so that no page copies a list
by hand:

- the claims, from :data:`fragility.catalog.claims.CLAIMS` (``claims-summary``, ``claims-table``);
- the outputs of a run and of a study, from the catalog (``model-files``, ``run-tables``,
  ``cross-run-tables``, ``run-figures``, ``cross-run-figures``);
- the config keys, from ``config/schema.yaml`` (``config-keys``, ``training-keys``,
  ``remedy-params``);
- a file of the repository as it is, ``<!-- include: config.yaml -->``.

It imports ``fragility`` from ``src/`` (no install needed) and reads the schema with PyYAML,
which MkDocs itself needs. A marker the hook does not know, or one no page uses, stops the
build, so a typo cannot leave a table out silently.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml
from mkdocs.exceptions import PluginError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"

MARKER = re.compile(r"^<!-- ([a-z][a-z-]*)(?:: (\S+))? -->$", re.MULTILINE)
HEADS = {"linear": "linear", "normed": "cosine (LDAM's normed head)"}
RESAMPLED = {
    "test": "the test images",
    "train": "the training images",
    "partner": "the training images of the run and of its balanced partner",
    "model": "nothing: it is a property of the weights, so it has no bootstrap interval "
    "and below three seeds its verdict is inconclusive",
}


def _catalog():
    # MkDocs restores sys.path after loading a hook, so src/ goes on it here, when needed
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    try:
        import fragility.catalog.claims
        import fragility.catalog.layout
        import fragility.catalog.outputs
    except ImportError as error:  # a clean clone needs only src/ on the path
        raise PluginError(
            f"docs/hooks/markers.py: cannot import fragility.catalog: {error}"
        ) from None
    return fragility.catalog


def _cell(text: object) -> str:
    """Text for one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(names) -> str:
    return ", ".join(f"`{name}`" for name in names)


# -- the claims ----------------------------------------------------------------------------------


def _paper_values(spec, catalog) -> list[str]:
    out = []
    for model, value in spec.paper.items():
        label = catalog.claims.PAPER_MODELS[model].label
        if value.value is None:
            out.append(f"{label}: no number ({value.reported})")
        elif value.printed:
            out.append(f"{label}: {value.value:+.3f} ({value.reported})")
        else:
            out.append(f"{label}: {value.value:+.3f} from a bound or a figure ({value.reported})")
    return out


def _threshold(text: str) -> str:
    """What "holds" means in the paper's units; a bare comparison is the statistic's."""
    return f"the statistic {text}" if text[:1] in "<>" else text


def claims_summary() -> str:
    catalog = _catalog()
    rows = []
    for name, spec in catalog.claims.CLAIMS.items():
        heads = "all" if set(spec.heads) == set(HEADS) else " and ".join(spec.heads) + " only"
        compared = any(spec.comparable(value) for value in spec.paper.values())
        rows.append([
            f"[`{name}`](#{name})", spec.label, spec.source, heads,
            "yes" if spec.partner else "no", "yes" if spec.size_matched else "no",
            "yes" if compared else "no",
        ])  # fmt: skip
    header = ["claim", "in short", "the paper", "heads", "balanced partner", "size-matched",
              "size against the paper's"]  # fmt: skip
    return f"{len(rows)} claims.\n\n" + _table(header, rows)


def claims_table() -> str:
    catalog = _catalog()
    blocks = []
    for name, spec in catalog.claims.CLAIMS.items():
        module, function = spec.compute.split(":")  # "package.module:function"
        heads = " and ".join(HEADS[h] for h in spec.heads)
        if spec.head_reason:
            heads += f"; n/a on any other head: {spec.head_reason}"
        values = _paper_values(spec, catalog)
        compared = [
            catalog.claims.PAPER_MODELS[m].label
            for m, v in spec.paper.items()
            if spec.comparable(v)
        ]
        lines = [
            f"### {spec.label} {{#{name}}}",
            "",
            f"`{name}` · {spec.source}. The paper: “{spec.statement}”.",
            "",
            f"- **Statistic**, positive when the claim holds: {spec.statistic}.",
            f"- **Holds when**: {_threshold(spec.threshold)}.",
            f"- **The bootstrap redraws**: {RESAMPLED[spec.resampled]}.",
            f"- **Heads**: {heads}.",
            "- **Balanced partner**: "
            + (
                "needed (same dataset, loss, head, architecture and epochs); n/a without one."
                if spec.partner
                else "not needed."
            ),
            "- **Size-matched**: "
            + (
                "yes; the unmatched value stays in the run's tables."
                if spec.size_matched
                else "no."
            ),
            "- **The paper's values**: " + ("; ".join(values) if values else "none printed") + ".",
            "- **Size against the paper's**: "
            + (
                f"compared where the group's paper model is {', '.join(compared)}."
                if compared
                else "never compared (see the rule above); a claim that holds reads *holds*."
            ),
            f"- **Measured by** `{module}.{function}`.",
            "",
        ]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


# -- outputs of the catalog ------------------------------------------------------------------------


def model_files() -> str:
    catalog = _catalog()
    rows = [[f"`{kind}`", f"`{path}`"] for kind, path in catalog.layout.MODEL_FILES.items()]
    return _table(["kind", "file in a model folder"], rows)


def run_tables() -> str:
    catalog = _catalog()
    rows = [
        [f"`{rq}`", spec.what, _code(f"{rq}/{t}" for t in spec.tables), _code(spec.reads)]
        for rq, spec in catalog.outputs.RUN_TABLES.items()
    ]
    return _table(["question", "what", "tables (`.csv` and `.parquet`)", "reads"], rows)


def cross_run_tables() -> str:
    catalog = _catalog()
    rows = []
    for name, spec in catalog.outputs.CROSS_RUN_TABLES.items():
        scope = "imbalanced runs" if spec.imbalanced_only else "every run"
        rows.append([f"`{name}`", spec.description, f"{_code(spec.reads)} of {scope}"])
    return _table(["table", "what", "reads"], rows)


def _figures(figures: dict, per_run: bool) -> str:
    rows = []
    for name, spec in figures.items():
        where = f"`{{run}}/{spec.rq}/{name}.png`" if per_run else f"`figures/{name}.png`"
        rows.append([where, _code(spec.tables), spec.caption])
    return _table(["figure", "draws", "caption"], rows)


def run_figures() -> str:
    return _figures(_catalog().outputs.RUN_FIGURES, per_run=True)


def cross_run_figures() -> str:
    return _figures(_catalog().outputs.CROSS_RUN_FIGURES, per_run=False)


# -- config keys of config/schema.yaml ---------------------------------------------------------------


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _resolve(node: dict, schema: dict) -> dict:
    """``node`` with a ``$ref`` to ``#/$defs/...`` and an ``allOf`` of refs merged in."""
    if "$ref" in node:
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    for part in node.get("allOf", []):
        extra = _resolve(part, schema)
        node = {**node, "properties": {**extra.get("properties", {}), **node.get("properties", {})}}
    return node


def _kind(node: dict) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    kind = node.get("type", "")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if node.get("then", {}).get("enum"):
        kind += " (" + ", ".join(f"`{v}`" for v in node["then"]["enum"]) + ")"
    return kind


def _default(node: dict) -> str:
    return f"`{json.dumps(node['default'])}`" if "default" in node else ""


def _keys(node: dict, path: str, schema: dict, stop: str) -> Iterator[list[str]]:
    """Rows (key, type, default, description) of every key under ``node``; a ``$ref`` to
    ``stop`` is named, not expanded (its keys have a table of their own)."""
    for key, child in node.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        if child.get("$ref") == stop:
            yield [f"`{here}`", "object", _default(child),
                   f"{child.get('description', '')} Its keys: the training settings below."]  # fmt: skip
            continue
        child = _resolve(child, schema)
        yield [f"`{here}`", _kind(child), _default(child), child.get("description", "")]
        yield from _nested(child, here, schema, stop)


def _nested(node: dict, path: str, schema: dict, stop: str) -> Iterator[list[str]]:
    if "properties" in node:
        yield from _keys(node, path, schema, stop)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        if extra.get("$ref") == stop:
            yield [f"`{path}.<name>`", "object", "", "Its keys: the training settings below."]
        else:
            yield from _nested(_resolve(extra, schema), f"{path}.<name>", schema, stop)
    items = node.get("items")
    if isinstance(items, dict) and "properties" in items:
        yield from _keys(items, f"{path}[]", schema, stop)


def config_keys() -> str:
    schema = _schema()
    rows = list(_keys(schema, "", schema, "#/$defs/training"))
    return _table(["key", "type", "default", "what it does"], rows)


def training_keys() -> str:
    schema = _schema()
    rows = list(_keys(schema["$defs"]["training"], "", schema, ""))
    return _table(["key", "type", "default", "what it does"], rows)


def remedy_params() -> str:
    """The head that several methods share, once, then each method's own parameters."""
    schema = _schema()
    head = schema["$defs"]["remedy_head"]
    columns = ["parameter", "type", "default", "what it does"]
    blocks = [
        f"**The head** ({head['description']})\n\n"
        + _table(columns, list(_keys(head, "", schema, "")))
    ]
    methods = schema["properties"]["remedies"]["properties"]["methods"]
    for method in methods["additionalProperties"]["properties"]["method"]["enum"]:
        node = schema["$defs"]["remedy_params"][method]
        own = list(_keys(node, "", schema, ""))
        shares = any(part.get("$ref") == "#/$defs/remedy_head" for part in node.get("allOf", []))
        text = f"**`{method}`**." + (f" {node['description']}" if "description" in node else "")
        if shares:
            text += " Its parameters: the head's above" + (", and:" if own else ".")
        else:
            text += " Its parameters:" if own else " No parameters."
        blocks.append(f"{text}\n\n{_table(columns, own)}" if own else text)
    return "\n\n".join(blocks)


def include(path: str) -> str:
    """A file of the repository as a fenced code block (its suffix names the language)."""
    file = (REPO / path).resolve()
    if REPO not in file.parents or not file.is_file():
        raise PluginError(f"<!-- include: {path} -->: no such file in the repository")
    return f"```{file.suffix.lstrip('.')}\n{file.read_text().rstrip()}\n```"


FILLERS: dict[str, Callable[[], str]] = {
    "claims-summary": claims_summary,
    "claims-table": claims_table,
    "model-files": model_files,
    "run-tables": run_tables,
    "cross-run-tables": cross_run_tables,
    "run-figures": run_figures,
    "cross-run-figures": cross_run_figures,
    "config-keys": config_keys,
    "training-keys": training_keys,
    "remedy-params": remedy_params,
}
_used: set[str] = set()


def on_pre_build(config) -> None:
    _used.clear()


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match: re.Match) -> str:
        name, argument = match.groups()
        if name == "include" and argument:
            return include(argument)
        if name not in FILLERS or argument:
            known = ", ".join(FILLERS)
            raise PluginError(
                f"{page.file.src_uri}: unknown marker {match.group(0)}; known: {known}, "
                "include: <path>"
            )
        _used.add(name)
        return FILLERS[name]()

    return MARKER.sub(fill, markdown)


def on_post_build(config) -> None:
    unused = sorted(set(FILLERS) - _used)
    if unused:
        raise PluginError(f"no page uses the markers {', '.join(unused)}: place or remove them")
