"""Will TF Serving run this export? Every op of the SavedModel against its release's op list.

TF Serving's model server links TensorFlow's ops and tensorflow-text's, and runs with
XLA off (DESIGN.md): a graph with an `Xla*` op (keras' `ops.slice_update` emits
`XlaDynamicUpdateSlice` even without jit_compile) or an op its release does not have
loads everywhere here and fails only on the server. `check` reads saved_model.pb
and names each such op, the functions that hold it and the signatures that reach it.

The op lists are data files beside this module, `serving_ops/tf-X.Y.txt`, one per TF
Serving release: what `tensorflow==X.Y` and `tensorflow-text==X.Y` register, less the
Xla ops (`serving_ops/make_op_list.py` writes them).

Target versions: "X.Y" (or "X.Y.Z", the container's tag) of a release with a list is
checked against that list. A release newer than every list is checked against the
newest older one of the same major version, with a warning: TensorFlow does not remove
ops within a major version, so what that release runs, the newer one runs too (a new
op it has would be refused; add its list then). Any other release (older than the
lists, or between two) and anything that is no version ("latest", "2") is refused with
the known targets: a newer list would pass ops that release lacks.

    result = check("models/digits/1", "2.20")
    result.problems   # [] when TF Serving 2.20 runs every op
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import pathlib
import re

from export.errors import ExportError

log = logging.getLogger(__name__)

# The TF Serving release the README deploys (serving/deploy pins its image).
DEFAULT_SERVING_VERSION = "2.20"
OP_LISTS = pathlib.Path(__file__).with_name("serving_ops")
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?$")
_XLA = ("Xla", "_Xla")

# What a user of the common sources of Xla ops writes instead.
_XLA_FIXES = {
    "XlaDynamicUpdateSlice": "keras.ops.slice_update emits XlaDynamicUpdateSlice (even without jit_compile); "
                             "write the update with tf.tensor_scatter_nd_update (or tf.concat of slices)",
}
_XLA_FIX = ("Xla ops come from XLA-only code (tf2xla's Python ops, jit_compile-only layers); "
            "write that part with plain TensorFlow ops")


def _parse(version) -> tuple[int, int] | None:
    match = _VERSION.match(version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2])) if match else None


def known_versions(op_lists=None) -> list[str]:
    """The TF Serving releases with an op list, oldest first ("2.20", "2.21")."""
    found = [p.stem[len("tf-"):] for p in pathlib.Path(op_lists or OP_LISTS).glob("tf-*.txt")]
    return sorted((v for v in found if _parse(v)), key=_parse)


def resolve_version(target, op_lists=None, *, warn: bool = True) -> str:
    """The op list a target version is checked against (see the module's docstring);
    raises ExportError, listing the known targets, for a target that has none.

    Example:
        >>> resolve_version("2.20.0")
        '2.20'
    """
    known = known_versions(op_lists)
    wanted = _parse(target)
    how = (f"Known TF Serving versions: {', '.join(known)} (default {DEFAULT_SERVING_VERSION}); "
           f"a list for another release is made by export/serving_ops/make_op_list.py.")
    if wanted is None:
        raise ExportError(f"Target serving version {target!r} is not a release number X.Y such as "
                          f"{DEFAULT_SERVING_VERSION!r} (the tensorflow/serving tag you deploy). {how}")
    name = f"{wanted[0]}.{wanted[1]}"
    if name in known:
        return name
    older = [v for v in known if _parse(v)[0] == wanted[0] and _parse(v) < wanted]
    if not older or any(_parse(v) > wanted for v in known):
        raise ExportError(f"No op list for TF Serving {name}, so what it can run is unknown. {how}")
    if warn:
        log.warning("No op list for TF Serving %s: checking against %s's, the newest older one (ops are "
                    "kept within a major version). Add %s's with export/serving_ops/make_op_list.py.",
                    name, older[-1], name)
    return older[-1]


@functools.lru_cache(maxsize=None)
def _read_op_list(path: str) -> frozenset:
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def op_list(version: str, op_lists=None) -> frozenset:
    """The op names TF Serving `version` (one of `known_versions`) runs."""
    return _read_op_list(str(pathlib.Path(op_lists or OP_LISTS) / f"tf-{version}.txt"))


@dataclasses.dataclass
class ServingCheck:
    """What `check` found: the ops a SavedModel uses and what its target cannot run."""

    target_version: str  # as asked
    op_list: str  # the release whose list was used
    written_by: str  # the TensorFlow version that wrote the SavedModel
    ops: list  # every op type the serve MetaGraph uses, sorted
    problems: list  # one message per op the target cannot run

    @property
    def ok(self) -> bool:
        return not self.problems

    def card(self) -> dict:
        """The model card's "serving" entry."""
        return {"target_version": self.target_version, "op_list": self.op_list, "ops": len(self.ops),
                "checked": True, "tensorflow_version": self.written_by}


def _calls(node, functions) -> set:
    """The library functions a node calls: as its op type, or through a function attr
    (PartitionedCall's f, While's cond/body, If's branches)."""
    called = {node.op} & functions.keys()
    for attr in node.attr.values():
        if attr.HasField("func"):
            called.add(attr.func.name)
        called.update(f.name for f in attr.list.func)
    return called & functions.keys()


def _uses(meta_graph):
    """(graph node name -> (op, inputs, calls), function -> (ops, calls))."""
    functions = {f.signature.name: f for f in meta_graph.graph_def.library.function}
    nodes = {n.name: (n.op, [i.lstrip("^").split(":")[0] for i in n.input], _calls(n, functions))
             for n in meta_graph.graph_def.node}
    # A node whose op type names a library function is a call of it, not an op.
    bodies = {name: ({n.op for n in f.node_def if n.op not in functions},
                     set().union(*(_calls(n, functions) for n in f.node_def)))
              for name, f in functions.items()}
    return nodes, bodies


def _reached_ops(nodes, bodies, outputs) -> set:
    """The op types that computing `outputs` (tensor names) runs: the graph nodes
    behind them and every function they call, transitively."""
    seen, stack, ops, functions = set(), [t.split(":")[0] for t in outputs], set(), set()
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        op, inputs, calls = nodes[name]
        ops.add(op)
        stack += inputs
        functions |= calls
    stack = list(functions)
    while stack:
        body_ops, calls = bodies[stack.pop()]
        ops |= body_ops
        for callee in calls - functions:
            functions.add(callee)
            stack.append(callee)
    return ops


def _fix(op: str, target: str, op_lists) -> str:
    if op.startswith(_XLA):
        return f"TF Serving runs with XLA off. {_XLA_FIXES.get(op, _XLA_FIX)}"
    newer = [v for v in known_versions(op_lists) if _parse(v) > _parse(target) and op in op_list(v, op_lists)]
    if newer:
        return (f"it is new in TF Serving {newer[0]}: serve with tensorflow/serving:{newer[0]}.0 and export with "
                f"--target-serving-version {newer[0]} (target_serving_version={newer[0]!r}), or avoid the op")
    return ("neither TensorFlow nor tensorflow-text registers it (a custom op library?), and TF Serving links "
            "only those: write it with TensorFlow ops")


def check(export_dir, target_version: str = DEFAULT_SERVING_VERSION, *, op_lists=None) -> ServingCheck:
    """Checks that TF Serving `target_version` can run every op of the export's serve graph.

    Args:
        export_dir: a SavedModel folder.
        target_version: the TF Serving release ("2.20"); see the module's docstring.
        op_lists: folder of `tf-X.Y.txt` files; default: the ones beside this module.

    Returns:
        A `ServingCheck`; its `problems` name each op the target cannot run, the
        functions holding it, the signatures reaching it and the fix.

    Example:
        >>> check("models/digits/1", "2.20").ok
        True
    """
    from export.model_card import read_saved_model  # imports TensorFlow: not at `zoo --help` time

    version = resolve_version(target_version, op_lists)
    servable = op_list(version, op_lists)
    meta_graph = next((m for m in read_saved_model(export_dir).meta_graphs if "serve" in m.meta_info_def.tags), None)
    if meta_graph is None:
        raise ExportError(f"{export_dir} has no MetaGraph tagged 'serve', which TF Serving loads.")
    nodes, bodies = _uses(meta_graph)
    where = {}  # op -> the places that hold it
    for op, _, _ in nodes.values():
        if op not in bodies:
            where.setdefault(op, set()).add("the graph")
    for name, (ops, _) in bodies.items():
        for op in ops:
            where.setdefault(op, set()).add(f"function {name}")
    bad = sorted(op for op in where if op not in servable or op.startswith(_XLA))
    problems = []
    if bad:
        reached = {key: _reached_ops(nodes, bodies, [t.name for t in sig.outputs.values()])
                   for key, sig in meta_graph.signature_def.items()}
        for op in bad:
            keys = sorted(k for k, ops in reached.items() if op in ops)
            places = sorted(where[op])
            places = ", ".join(places[:3]) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
            problems.append(f"op {op} (in {places}; signatures: {', '.join(keys) or 'none'}): "
                            f"TF Serving {target_version} cannot run it; {_fix(op, version, op_lists)}.")
    written_by = meta_graph.meta_info_def.tensorflow_version
    release = re.match(r"(\d+)\.(\d+)", written_by)
    if not problems and release and (int(release[1]), int(release[2])) > _parse(target_version):
        # Newer writers keep old graphs loadable (default-valued attrs are stripped); ops are what differ.
        log.info("The SavedModel was written by TensorFlow %s, newer than TF Serving %s: it loads there "
                 "when its ops do, and TF Serving %s has every op it uses (checked).",
                 written_by, target_version, target_version)
    return ServingCheck(target_version, version, written_by, sorted(where), problems)
