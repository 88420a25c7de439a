"""Ops audit: every op in an exported graph must be a registered core TensorFlow op.

`tensorflow_model_server` links core TensorFlow only: a graph that names a custom op (tensorflow-addons'
`Addons>...` kernels, a user op library) loads in Python where the library was imported but fails in the
model server. The audit walks the graph and its whole function library.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable, List, Set

import tensorflow as tf
from tensorflow.core.framework import graph_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

# Op-name prefixes of libraries the model server does not ship (tensorflow-addons registers "Addons>...").
FORBIDDEN_PREFIXES = ("Addons>",)


class OpsAuditError(ValueError):
    """The graph uses ops that `tensorflow_model_server` cannot run."""


@dataclasses.dataclass(frozen=True)
class OpsAudit:
    """Result of an audit: every op type seen, and those that are not core TensorFlow ops."""

    op_types: frozenset
    unregistered: frozenset
    forbidden: frozenset

    @property
    def ok(self) -> bool:
        return not self.unregistered and not self.forbidden


def _graph_op_types(graph_def: graph_pb2.GraphDef) -> Set[str]:
    functions = {f.signature.name for f in graph_def.library.function}
    nodes: List = list(graph_def.node)
    for function in graph_def.library.function:
        nodes.extend(function.node_def)
    # A node may call a library function directly by its name; that is not an op type.
    return {node.op for node in nodes if node.op not in functions}


def _is_core_op(op_type: str) -> bool:
    return op_def_registry.get(op_type) is not None and hasattr(tf.raw_ops, op_type)


def audit_graph_def(graph_def: graph_pb2.GraphDef) -> OpsAudit:
    """Audits one GraphDef (its nodes and every function of its library)."""
    op_types = _graph_op_types(graph_def)
    forbidden = {op for op in op_types if op.startswith(FORBIDDEN_PREFIXES)}
    unregistered = {op for op in op_types if not _is_core_op(op)}
    return OpsAudit(frozenset(op_types), frozenset(unregistered), frozenset(forbidden))


def audit_graph_defs(graph_defs: Iterable[graph_pb2.GraphDef]) -> OpsAudit:
    """Audits several graphs (for example every MetaGraph of a SavedModel) as one."""
    ops: Set[str] = set()
    unregistered: Set[str] = set()
    forbidden: Set[str] = set()
    for graph_def in graph_defs:
        audit = audit_graph_def(graph_def)
        ops |= audit.op_types
        unregistered |= audit.unregistered
        forbidden |= audit.forbidden
    return OpsAudit(frozenset(ops), frozenset(unregistered), frozenset(forbidden))


def audit_saved_model(export_dir: str) -> OpsAudit:
    """Audits `<export_dir>/saved_model.pb` (all MetaGraphs, all functions)."""
    path = os.path.join(export_dir, "saved_model.pb")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: pass a SavedModel version directory (<base>/<version>).")
    saved_model = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    return audit_graph_defs(mg.graph_def for mg in saved_model.meta_graphs)


def check_ops(audit: OpsAudit, where: str) -> None:
    """Raises OpsAuditError naming the offending ops of `audit` (found in `where`)."""
    if audit.ok:
        return
    parts = []
    if audit.forbidden:
        parts.append(f"custom-library ops {sorted(audit.forbidden)} (tensorflow-addons or similar)")
    rest = audit.unregistered - audit.forbidden
    if rest:
        parts.append(f"ops not registered in core TensorFlow {sorted(rest)}")
    raise OpsAuditError(
        f"{where} uses {' and '.join(parts)}; tensorflow_model_server cannot run them. "
        "Replace them with core TensorFlow ops (see maskrnn_tf.ops) and export again."
    )
