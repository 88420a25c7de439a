"""A SavedModel version loaded the way `tensorflow_model_server` loads it: a TF1 session over the `serve` graph.

The model server (SavedModelBundle) imports the MetaGraph tagged `serve` into a fresh graph, runs the saver's
restore op and the init op in a session, and answers Predict with `Session::Run`, feeding and fetching the
tensors named by the SignatureDef. `tf.saved_model.load` (the TF2 loader) restores variables through the
object graph instead and hides exports whose variables the restore op misses; this class does not, so the
tests, the stand-in server and the export-time warmup replay see what the model server sees.

Before running, requests are checked the way the model server and its session check them: every signature
input present and none extra, each dtype equal to the SignatureDef's (the C++ session refuses another dtype
where Python's `Session.run` would cast it). Shapes are not checked: the model server feeds a tensor of any shape
to the signature's placeholder (Python's `Session.run` would refuse it, so requests run through a callable made
from CallableOptions, as the C++ session runs them); the export's own Asserts check them. Errors are
`tf.errors.InvalidArgumentError` naming the input; errors raised inside the graph propagate as they are.
"""
from __future__ import annotations

import contextlib
import os
import logging
import threading
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2

SERVE_TAG = "serve"


@contextlib.contextmanager
def _tf_warnings_off() -> Iterator[None]:
    """TensorFlow's Python logger at ERROR for the duration (its level is restored)."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def serve_signature_defs(export_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the `serve` MetaGraph of `<export_dir>/saved_model.pb` (what the server loads)."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{export_dir} has no MetaGraph tagged 'serve'.")


class SignatureNotFoundError(KeyError):
    """The version has no SignatureDef with the requested key."""


def _invalid(message: str) -> tf.errors.InvalidArgumentError:
    return tf.errors.InvalidArgumentError(None, None, message)


class SessionModel:
    """One version directory in a `tf.compat.v1.Session` on its own graph; `run` answers one signature call.

    Usage: `with SessionModel(version_dir) as m: m.run("serving_default", {"frame": ..., ...})`.
    Thread-safe: `Session.run` may be called from several threads; the callable cache is locked.
    """

    def __init__(self, export_dir: str, tags: Sequence[str] = (SERVE_TAG,)):
        self.export_dir = export_dir
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        try:
            with self.graph.as_default(), _tf_warnings_off():
                # Deliberately the TF1 loader (what SavedModelBundle runs), so its deprecation notice is noise.
                meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), export_dir)
        except BaseException:
            self.session.close()
            raise
        # `__saved_model_init_op` is the loader's own entry, not a servable signature.
        self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = {
            key: sig for key, sig in meta_graph.signature_def.items() if not key.startswith("__")
        }
        self._callables: Dict[Tuple[str, Tuple[str, ...]], object] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Releases the session."""
        self.session.close()

    def __enter__(self) -> "SessionModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def signature(self, key: str) -> meta_graph_pb2.SignatureDef:
        """The SignatureDef `key` (empty: `serving_default`); SignatureNotFoundError when there is none."""
        key = key or "serving_default"
        if key not in self.signature_defs:
            raise SignatureNotFoundError(f'Serving signature key "{key}" not found (served: {sorted(self.signature_defs)}).')
        return self.signature_defs[key]

    def check_inputs(self, key: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """The inputs as arrays after the model server's checks (names, dtypes; not shapes); raises
        InvalidArgumentError."""
        sig = self.signature(key)
        missing = sorted(set(sig.inputs) - set(inputs))
        if missing:
            raise _invalid(f"Missing {', '.join(f'input {m}' for m in missing)} of signature '{key}' (it takes {sorted(sig.inputs)}).")
        extra = sorted(set(inputs) - set(sig.inputs))
        if extra:
            raise _invalid(f"Unexpected {', '.join(f'input {e}' for e in extra)} for signature '{key}' (it takes {sorted(sig.inputs)}).")
        arrays = {}
        for name, info in sig.inputs.items():
            array = np.asarray(inputs[name])
            want_dtype = tf.dtypes.as_dtype(info.dtype)
            if tf.dtypes.as_dtype(array.dtype) != want_dtype:
                raise _invalid(f"Signature '{key}': input {name} expects {want_dtype.name} but "
                               f"{tf.dtypes.as_dtype(array.dtype).name} is provided.")
            arrays[name] = array
        return arrays

    def _callable(self, key: str, outputs: Tuple[str, ...]):
        with self._lock:
            fn = self._callables.get((key, outputs))
            if fn is None:
                sig = self.signature_defs[key]
                # Not `make_callable(fetches, feeds)`: it feeds through `Session.run`, whose Python checks refuse
                # a shape the placeholder does not declare, which the model server's C++ session never checks.
                options = config_pb2.CallableOptions(feed=[sig.inputs[name].name for name in sorted(sig.inputs)],
                                                     fetch=[sig.outputs[name].name for name in outputs])
                fn = self.session._make_callable_from_options(options)  # pylint: disable=protected-access
                self._callables[(key, outputs)] = fn
            return fn

    def run(self, key: str, inputs: Mapping[str, np.ndarray],
            outputs: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
        """Runs signature `key` on `inputs` (name -> array); returns `outputs` (default: all) as arrays."""
        key = key or "serving_default"
        arrays = self.check_inputs(key, inputs)
        sig = self.signature_defs[key]
        names: List[str] = list(outputs) if outputs else sorted(sig.outputs)
        unknown = sorted(set(names) - set(sig.outputs))
        if unknown:
            raise _invalid(f"Unknown output(s) {unknown}; signature '{key}' has {sorted(sig.outputs)}.")
        values = self._callable(key, tuple(names))(*[arrays[name] for name in sorted(sig.inputs)])
        return dict(zip(names, values))


__all__ = ["SessionModel", "SignatureNotFoundError", "SERVE_TAG"]
