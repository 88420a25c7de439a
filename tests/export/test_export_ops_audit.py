"""The ops audit: the real export passes; hand-made graphs with custom or Addons ops fail."""
import os

import pytest
from tensorflow.core.framework import function_pb2, graph_pb2, node_def_pb2

from maskrnn_tf.export.ops_audit import OpsAuditError, audit_graph_def, audit_saved_model, check_ops


def test_export_uses_core_ops_only(export_base):
    audit = audit_saved_model(os.path.join(export_base, "1"))
    assert audit.ok, (audit.unregistered, audit.forbidden)
    # The graph really was walked, including the function library where the model lives.
    assert {"Conv2D", "GatherNd", "Sigmoid", "ArgMax"} <= audit.op_types
    check_ops(audit, "export")


def _graph(*ops, function_ops=()):
    graph = graph_pb2.GraphDef(node=[node_def_pb2.NodeDef(name=f"n{i}", op=op) for i, op in enumerate(ops)])
    if function_ops:
        function = function_pb2.FunctionDef()
        function.signature.name = "my_function"
        function.node_def.extend(node_def_pb2.NodeDef(name=f"f{i}", op=op) for i, op in enumerate(function_ops))
        graph.library.function.append(function)
    return graph


def test_core_graph_passes():
    audit = audit_graph_def(_graph("Placeholder", "Conv2D", "my_function", function_ops=("MatMul",)))
    assert audit.ok and audit.op_types == {"Placeholder", "Conv2D", "MatMul"}


def test_unregistered_op_fails():
    audit = audit_graph_def(_graph("Placeholder", "MaskRnnCustomWarp"))
    assert not audit.ok and audit.unregistered == {"MaskRnnCustomWarp"}
    with pytest.raises(OpsAuditError, match="MaskRnnCustomWarp"):
        check_ops(audit, "graph")


def test_addons_op_in_function_library_fails():
    audit = audit_graph_def(_graph("Placeholder", function_ops=("Addons>ImageProjectiveTransformV2",)))
    assert audit.forbidden == {"Addons>ImageProjectiveTransformV2"}
    with pytest.raises(OpsAuditError, match="tensorflow-addons"):
        check_ops(audit, "graph")
