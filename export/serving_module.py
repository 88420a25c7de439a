"""The servable: a SavedModel whose signatures are one stateless MaskRNN step and the first-frame setup.

TF-Serving keeps no per-video state, so `serving_default` is one recurrent step for
the N objects of one video and the client carries `probs` / `boxes` from frame to frame. `first_frame` turns
the user's first-frame id mask into the initial state exactly as the in-process loops do (0/1 maps and
`mask_to_box`), so a client needs no TensorFlow. H, W and N are dynamic in every signature.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Sequence, Tuple

import tensorflow as tf

from maskrnn_tf.model import MaskRNN
from maskrnn_tf.model.rebuild import PRECISIONS, rebuild_with_precision  # noqa: F401  (re-exported: export's API)
from maskrnn_tf.ops import mask_to_box
from maskrnn_tf.ops.color_tables import fit_color_tables

STEP_SIGNATURE = "serving_default"
FIRST_FRAME_SIGNATURE = "first_frame"
BATCHED_STEP_SIGNATURE = "step_batched"

# Name -> (dtype, shape) of every signature input and output; the client and the stand-in server read these.
STEP_INPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "frame": (tf.uint8, (None, None, 3)),
    "flow_to_prev": (tf.float32, (None, None, 2)),
    "flow_to_next": (tf.float32, (None, None, 2)),
    "prev_probs": (tf.float32, (None, None, None)),
    "prev_boxes": (tf.float32, (None, 4)),
}
# The model's fusion threshold (its config's mask_threshold), one value per object row so that a batching server
# can split it like the other outputs: clients fuse the probabilities as `labels` does. Exports made before it
# lack it (clients then fuse at 0.5, the default).
MASK_THRESHOLD_OUTPUT = "mask_threshold"
STEP_OUTPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "probs": (tf.float32, (None, None, None)),
    "boxes": (tf.float32, (None, 4)),
    "labels": (tf.int32, (None, None)),
    MASK_THRESHOLD_OUTPUT: (tf.float32, (None,)),
}
# One object per row, each row with its own frame: every input shares axis 0, which is what the model
# server's request batching (--enable_batching) concatenates on. The per-video signatures above cannot be
# batched by the server (frame [H, W, 3] and prev_probs [N, H, W] differ on axis 0).
BATCHED_STEP_INPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "frame": (tf.uint8, (None, None, None, 3)),
    "flow_to_prev": (tf.float32, (None, None, None, 2)),
    "flow_to_next": (tf.float32, (None, None, None, 2)),
    "prev_probs": (tf.float32, (None, None, None)),
    "prev_boxes": (tf.float32, (None, 4)),
}
# The row signatures (step_batched, color_tables) answer a row that fails the export's value checks (a NaN or
# infinite flow, box or table, prev_probs outside [0, 1], a box with inverted corners, an object id absent from its
# mask) with the check's message in this output ("" = the row is fine) and zeros in probs and boxes (color_model),
# instead of failing the request: a batching model server runs the requests it merged as one, so a failing check
# would fail every other client's request batched with the bad one. Exports made before it lack it (they fail the
# request); exports made before the [0, 1] check answer such prev_probs without a word.
INPUT_ERROR_OUTPUT = "input_error"
INPUT_ERROR_SPEC: Tuple[tf.DType, Tuple] = (tf.string, (None,))
BATCHED_STEP_OUTPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "probs": (tf.float32, (None, None, None)),
    "boxes": (tf.float32, (None, 4)),
    MASK_THRESHOLD_OUTPUT: (tf.float32, (None,)),
    INPUT_ERROR_OUTPUT: INPUT_ERROR_SPEC,
}
FIRST_FRAME_INPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "mask": (tf.uint8, (None, None)),
    "object_ids": (tf.int32, (None,)),
}
FIRST_FRAME_OUTPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "prev_probs": (tf.float32, (None, None, None)),
    "prev_boxes": (tf.float32, (None, 4)),
}


# A network trained with a first-frame colour prior (model.color_prior_input) takes each object's colour table at
# every step, as the client carries prev_boxes; the `color_tables` signature fits them from the first frame and its
# id mask, one row per object (every input sharing axis 0, so that a batching server can merge requests).
COLOR_MODEL = "color_model"
COLOR_MODEL_SPEC: Tuple[tf.DType, Tuple] = (tf.float32, (None, 4096))
COLOR_TABLES_SIGNATURE = "color_tables"
COLOR_TABLES_INPUTS: Dict[str, Tuple[tf.DType, Tuple]] = {
    "frame": (tf.uint8, (None, None, None, 3)),
    "mask": (tf.uint8, (None, None, None)),
    "object_ids": (tf.int32, (None,)),
}


def _specs(table: Mapping[str, Tuple[tf.DType, Tuple]]) -> Dict[str, tf.TensorSpec]:
    return {name: tf.TensorSpec(shape, dtype, name=name) for name, (dtype, shape) in table.items()}


# The VGG-16 trunk max-pools 4 times ('valid', 2x2): a side smaller than 2**4 pools down to zero pixels and
# fails deep inside a resize. Frames and warmup shapes below it are refused with a message instead.
MIN_FRAME_SIZE = 16


# The step inputs that must be finite (with a colour prior also color_model).
_VALUE_CHECKED = ("flow_to_prev", "flow_to_next", "prev_probs", "prev_boxes")
INVERTED_BOXES = "input prev_boxes has inverted corners: rows are [y0, x0, y1, x1] with y0 <= y1 and x0 <= x1"


# A 0/255 mask sent as prev_probs ran without a word and answered meaningless masks (the network was trained on
# probabilities).
PROBS_OUT_OF_RANGE = ("input prev_probs must hold probabilities in [0, 1] (the previous step's probs, or first_frame's "
                      "0/1 masks; divide a 0/255 mask by 255)")
# How far past 0 and 1 prev_probs may lie: a client's bicubic or Lanczos resize of probabilities rings a little.
PROBS_SLACK = 1e-3


def _not_finite(name: str) -> str:
    return f"input {name} must be finite (no NaN or Inf)"


def _check_finite(x: tf.Tensor, name: str) -> tf.Operation:
    return tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(x)), [_not_finite(name)])


def _check_probabilities(probs: tf.Tensor, finite: tf.Operation) -> tf.Operation:
    """Asserts that every value of `probs` is in [0, 1] (within PROBS_SLACK), once `finite` (its finite check) has passed, so that a NaN
    or an Inf is reported as such whichever Assert the executor would run first. Two reductions: negligible beside
    the network."""
    with tf.control_dependencies([finite]):
        return tf.debugging.Assert((tf.reduce_min(probs) >= -PROBS_SLACK) & (tf.reduce_max(probs) <= 1 + PROBS_SLACK),
                                   [PROBS_OUT_OF_RANGE])


def _ordered(boxes: tf.Tensor) -> tf.Tensor:
    """[N] whether each box row [y0, x0, y1, x1] has y0 <= y1 and x0 <= x1."""
    return (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])


def _rows_finite(x: tf.Tensor) -> tf.Tensor:
    """[N] whether every value of each row (axis 0) of x is finite."""
    return tf.reduce_all(tf.reshape(tf.math.is_finite(x), [tf.shape(x)[0], -1]), axis=1)


def _rows_probabilities(x: tf.Tensor) -> tf.Tensor:
    """[N] whether every value of each row (axis 0) of x is in [0, 1] (a row holding NaN may pass: the finite
    check, listed before, reports it)."""
    rows = tf.reshape(x, [tf.shape(x)[0], -1])
    return (tf.reduce_min(rows, axis=1) >= -PROBS_SLACK) & (tf.reduce_max(rows, axis=1) <= 1 + PROBS_SLACK)


def _row_errors(checks: Sequence[Tuple[tf.Tensor, str]]) -> Tuple[tf.Tensor, tf.Tensor]:
    """(ok [N] bool, input_error [N] string) of per-row checks (passed [N], message): a row's message is its first
    failed check's, "" where all pass (INPUT_ERROR_OUTPUT)."""
    error = tf.fill(tf.shape(checks[0][0]), "")
    for passed, message in reversed(checks):
        error = tf.where(passed, error, message)
    return tf.reduce_all(tf.stack([passed for passed, _ in checks]), axis=0), error


def _zero_rows(x: tf.Tensor, ok: tf.Tensor) -> tf.Tensor:
    """x with the rows (axis 0) where not ok set to zero (also those holding NaN or Inf)."""
    keep = tf.reshape(ok, tf.concat([tf.shape(ok), tf.ones([tf.rank(x) - 1], tf.int32)], axis=0))
    return tf.where(keep, x, tf.zeros_like(x))


def _check_shape(x: tf.Tensor, name: str) -> tf.Operation:
    """Asserts that `x` has the rank and fixed sizes its signature declares (`x.shape`, from the TensorSpec).

    The model server feeds a request's tensor to the signature's placeholder whatever its shape (it checks names
    and dtypes), and Grappler folds `tf.rank` and `assert_rank` to the declared rank: the rank is counted from the
    fed tensor's shape instead, and the sizes are checked only once the rank is right (no out-of-range slice).
    """
    want = x.shape
    shown = "[" + ", ".join("?" if d is None else str(d) for d in want) + "]"
    rank = tf.reduce_sum(tf.cast(tf.shape(x) >= 0, tf.int32))
    rank_ok = tf.debugging.assert_equal(rank, want.rank, message=f"input {name} must have rank {want.rank} (shape "
                                                                  f"{shown})")
    with tf.control_dependencies([rank_ok]):
        sizes = [tf.debugging.assert_equal(tf.shape(x)[axis], size, message=f"input {name} must have size {size} on "
                                                                             f"axis {axis} (shape {shown})")
                 for axis, size in enumerate(want) if size is not None]
    return tf.group(rank_ok, *sizes)


def _with_checked_shapes(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """`inputs` read only after each has passed `_check_shape`, so that every later check and op sees the
    declared ranks (a wrong one is refused naming the input, not deep inside a slice or a convolution)."""
    with tf.control_dependencies([_check_shape(x, name) for name, x in inputs.items()]):
        return {name: tf.identity(x) for name, x in inputs.items()}


def _check_step_inputs(inputs: Dict[str, tf.Tensor], batched: bool) -> list:
    """In-graph checks of a step request; a failure is INVALID_ARGUMENT with a message naming the input.

    They run in the model server too (Assert is a core op), so a bad request gets a readable error there
    instead of a failure deep inside a convolution or a silently wrong answer: H, W and N agree across the
    inputs, the frame is at least MIN_FRAME_SIZE on each side, there is at least one object; colour tables (a
    colour prior network) have one row per object. Unbatched, also the values (finite, prev_probs in [0, 1],
    ordered boxes), which `step_batched` reports per row instead (INPUT_ERROR_OUTPUT).
    """
    lead = 1 if batched else 0
    frame_hw = tf.shape(inputs["frame"])[lead : lead + 2]
    n = tf.shape(inputs["prev_probs"])[0]
    checks = [
        tf.debugging.assert_greater_equal(
            frame_hw, MIN_FRAME_SIZE,
            message=f"input frame must be at least {MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} pixels (the VGG-16 trunk "
                    "pools 4 times); resize small frames up"),
        tf.debugging.assert_greater(
            n, 0, message="input prev_probs must hold at least one object (N >= 1; shape [N, H, W])"),
    ]
    for name in ("flow_to_prev", "flow_to_next"):
        checks.append(tf.debugging.assert_equal(
            tf.shape(inputs[name])[lead : lead + 2], frame_hw,
            message=f"input {name} must have the height and width of input frame"))
    checks.append(tf.debugging.assert_equal(
        tf.shape(inputs["prev_probs"])[1:3], frame_hw,
        message="input prev_probs [N, H, W] must have the height and width of input frame"))
    checks.append(tf.debugging.assert_equal(
        tf.shape(inputs["prev_boxes"])[0], n,
        message="input prev_boxes must have one row per object of input prev_probs"))
    if COLOR_MODEL in inputs:
        checks.append(tf.debugging.assert_equal(
            tf.shape(inputs[COLOR_MODEL])[0], n,
            message=f"input {COLOR_MODEL} must have one row per object of input prev_probs (the tables "
                    "color_tables returned)"))
    if not batched:
        for name in _VALUE_CHECKED + ((COLOR_MODEL,) if COLOR_MODEL in inputs else ()):
            checks.append(_check_finite(inputs[name], name))
            if name == "prev_probs":
                checks.append(_check_probabilities(inputs[name], checks[-1]))
        boxes = inputs["prev_boxes"]
        checks.append(tf.debugging.Assert(tf.reduce_all(_ordered(boxes)), [INVERTED_BOXES]))
    else:
        for name in ("frame", "flow_to_prev", "flow_to_next"):
            checks.append(tf.debugging.assert_equal(
                tf.shape(inputs[name])[0], n,
                message=f"input {name} must have one row per object of input prev_probs"))
    return checks


class MaskRNNServingFunctions:
    """The three endpoint functions over one MaskRNN: `serving_default` (one step), `first_frame`, `step_batched`.

    Plain Python functions of a dict of tensors; `Servable` traces them with their input signatures and saves
    the variables they read.
    """

    def __init__(self, model: MaskRNN):
        self.model = model

    def _step(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        inputs = _with_checked_shapes(inputs)
        with tf.control_dependencies(_check_step_inputs(inputs, batched=False)):
            inputs = {k: tf.identity(v) for k, v in inputs.items()}
        out = self.model.step(
            inputs["frame"],
            inputs["flow_to_prev"],
            inputs["flow_to_next"],
            inputs["prev_probs"],
            inputs["prev_boxes"],
            training=False,
            color_model=inputs.get(COLOR_MODEL),
        )
        probs = tf.cast(out["probs"], tf.float32)
        return {
            "probs": probs,
            "boxes": tf.cast(out["boxes"], tf.float32),
            "labels": self.model.fuse(probs),
            MASK_THRESHOLD_OUTPUT: self._threshold_rows(probs),
        }

    def _threshold_rows(self, probs: tf.Tensor) -> tf.Tensor:
        return tf.fill(tf.shape(probs)[:1], tf.constant(self.model.config.mask_threshold, tf.float32))

    def _step_batched(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        inputs = _with_checked_shapes(inputs)
        with tf.control_dependencies(_check_step_inputs(inputs, batched=True)):
            inputs = {k: tf.identity(v) for k, v in inputs.items()}
        # The values are checked per row (INPUT_ERROR_OUTPUT): a bad row's checked inputs are replaced by zeros
        # and its probs and boxes are zeros; the rows of other requests a batching server merged with it are
        # answered as if it were not there.
        names = _VALUE_CHECKED + ((COLOR_MODEL,) if COLOR_MODEL in inputs else ())
        checks = [(_rows_finite(inputs[name]), _not_finite(name)) for name in names]
        checks.append((_rows_probabilities(inputs["prev_probs"]), PROBS_OUT_OF_RANGE))
        checks.append((_ordered(inputs["prev_boxes"]), INVERTED_BOXES))
        ok, error = _row_errors(checks)
        inputs = {k: _zero_rows(v, ok) if k in names else v for k, v in inputs.items()}
        out = self.model(inputs, training=False)
        probs = _zero_rows(tf.cast(out["probs"], tf.float32), ok)
        return {"probs": probs, "boxes": _zero_rows(tf.cast(out["boxes"], tf.float32), ok),
                MASK_THRESHOLD_OUTPUT: self._threshold_rows(probs), INPUT_ERROR_OUTPUT: error}

    def _first_frame(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        inputs = _with_checked_shapes(inputs)
        ids = tf.cast(inputs["mask"], tf.int32)
        object_ids = inputs["object_ids"]
        probs = tf.cast(tf.equal(ids[None], object_ids[:, None, None]), tf.float32)
        checks = [
            tf.debugging.assert_greater(
                tf.size(object_ids), 0, message="input object_ids must name at least one object"),
            tf.debugging.Assert(
                tf.reduce_all((object_ids >= 1) & (object_ids <= 254)),
                ["input object_ids must hold ids 1..254 (0 is the background, 255 void pixels); got", object_ids]),
            tf.debugging.Assert(
                tf.reduce_all(tf.reduce_max(probs, axis=[1, 2]) > 0),
                ["input object_ids names an id that does not occur in input mask; object_ids:", object_ids]),
        ]
        with tf.control_dependencies(checks):
            probs = tf.identity(probs)
        boxes, _ = mask_to_box(probs, self.model.config.mask_threshold)
        return {"prev_probs": probs, "prev_boxes": boxes}

    def _color_tables(self, inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        inputs = _with_checked_shapes(inputs)
        ids = tf.cast(inputs["mask"], tf.int32)
        frames, object_ids = inputs["frame"], inputs["object_ids"]
        rows = tf.shape(object_ids)[0]
        checks = [
            tf.debugging.assert_equal(tf.shape(ids)[0], rows,
                                      message="input mask must have one row per object of input object_ids"),
            tf.debugging.assert_equal(tf.shape(frames)[0], rows,
                                      message="input frame must have one row per object of input object_ids"),
            tf.debugging.assert_equal(tf.shape(frames)[1:3], tf.shape(ids)[1:3],
                                      message="input frame must have the height and width of input mask (the first "
                                              "frame it annotates)"),
        ]
        # Per row, as step_batched's values (INPUT_ERROR_OUTPUT): a bad row answers a zero table.
        ok, error = _row_errors([
            ((object_ids >= 1) & (object_ids <= 254),
             "input object_ids must hold ids 1..254 (0 is the background, 255 void pixels)"),
            (tf.reduce_any(tf.equal(ids, object_ids[:, None, None]), axis=[1, 2]),
             "input object_ids names an id that does not occur in its row of input mask"),
        ])
        band = self.model.config.color_prior_band
        with tf.control_dependencies(checks):
            # Row by row: each row is one object of one video (its frame and whole id mask), as a batching server
            # may merge rows of several videos.
            tables = tf.map_fn(lambda row: fit_color_tables(row[0], row[1], row[2][None], band)[0],
                               (frames, ids, object_ids), fn_output_signature=tf.float32)
        return {COLOR_MODEL: _zero_rows(tables, ok), INPUT_ERROR_OUTPUT: error}

    def endpoints(self, batching: bool = False) -> Dict[str, Tuple[Callable, Dict[str, tf.TensorSpec]]]:
        """Signature key -> (function, input specs by name); the specs' names are the SignatureDef input names.

        With `batching` only `step_batched`: a model server started with --enable_batching batches requests to
        every signature of the model, and refuses any request whose inputs differ on axis 0 (the per-video
        signatures' do), warmup requests included, which fails the whole version.
        """
        tables = signature_tables(batching, bool(self.model.config.color_prior_input))
        functions = {STEP_SIGNATURE: self._step, FIRST_FRAME_SIGNATURE: self._first_frame,
                     BATCHED_STEP_SIGNATURE: self._step_batched, COLOR_TABLES_SIGNATURE: self._color_tables}
        return {key: (functions[key], _specs(inputs)) for key, (inputs, _) in tables.items()}


def signature_tables(batching: bool = False, color_prior: bool = False) -> Dict[str, Tuple[Mapping, Mapping]]:
    """Signature key -> (inputs, outputs) name -> (dtype, shape) tables of an export (see `endpoints`);
    `color_prior`: of a network with model.color_prior_input (the steps take `color_model`; `color_tables` fits
    it, also in a batching export)."""
    tables = {STEP_SIGNATURE: (STEP_INPUTS, STEP_OUTPUTS), FIRST_FRAME_SIGNATURE: (FIRST_FRAME_INPUTS, FIRST_FRAME_OUTPUTS),
              BATCHED_STEP_SIGNATURE: (BATCHED_STEP_INPUTS, BATCHED_STEP_OUTPUTS)}
    if color_prior:
        prior = {COLOR_MODEL: COLOR_MODEL_SPEC}
        tables[STEP_SIGNATURE] = ({**STEP_INPUTS, **prior}, STEP_OUTPUTS)
        tables[BATCHED_STEP_SIGNATURE] = ({**BATCHED_STEP_INPUTS, **prior}, BATCHED_STEP_OUTPUTS)
        tables[COLOR_TABLES_SIGNATURE] = (COLOR_TABLES_INPUTS, {**prior, INPUT_ERROR_OUTPUT: INPUT_ERROR_SPEC})
    if batching:
        return {key: value for key, value in tables.items() if key in (BATCHED_STEP_SIGNATURE, COLOR_TABLES_SIGNATURE)}
    return tables


class Servable:
    """The SavedModel of one MaskRNN: its serving functions traced once each with their input signatures (see
    `MaskRNNServingFunctions.endpoints`) and the `tf.Variable`s they read; `write_out(dir)` writes it.

    The variables are those the traces capture, each once, so the saver's restore op (what tensorflow_model_server
    and `saved_model_cli run` use) restores every weight; a plain `tf.Module` holding a Keras 3 model does not
    (see BUILD_NOTES.md, "Export"), and the model itself is not tracked: that saves a second copy of every weight,
    which the server restores and holds too. The signatures are saved as the concrete functions traced here:
    `tf.function`s would be traced again inside the save, where TensorFlow keys traces apart (twice the time).
    Signature keys are the endpoint names, input names the specs' names, outputs the returned dicts' keys; a
    batching export also serves `step_batched` as `serving_default`, which the model server needs.
    """

    def __init__(self, model: MaskRNN, batching: bool = False):
        if not model.built:
            model.build()  # MaskRNN builds its sub-models in __init__; tracing needs every weight made
        functions = MaskRNNServingFunctions(model)
        # autograph off: the serving functions have no tensor-dependent Python control flow.
        self.signatures = {key: tf.function(fn, input_signature=[specs], autograph=False).get_concrete_function()
                           for key, (fn, specs) in functions.endpoints(batching).items()}
        self.signatures.setdefault(STEP_SIGNATURE, self.signatures[BATCHED_STEP_SIGNATURE])
        read = {}
        for function in self.signatures.values():
            read.update((id(v), v) for v in function.variables)
        self._root = tf.Module()
        self._root.served_variables = list(read.values())
        for key, function in self.signatures.items():  # tf.saved_model.load users call them by name
            setattr(self._root, key, function)

    def write_out(self, export_dir: str) -> None:
        """Writes the SavedModel (saved_model.pb, variables/) into `export_dir`."""
        tf.saved_model.save(self._root, export_dir, signatures=self.signatures)
