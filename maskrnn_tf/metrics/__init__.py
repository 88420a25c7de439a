"""DAVIS evaluation: region similarity J, boundary accuracy F, temporal stability T, statistics, and the
dataset-level evaluation that writes davis2017-evaluation style CSVs (CLI: `python -m maskrnn_tf.evaluate`)."""
from maskrnn_tf.metrics.boundary import boundary_tolerance, db_eval_boundary, f_measure, seg2bmap
from maskrnn_tf.metrics.davis_dataset import SequenceSpec, detect_year, list_sequences
from maskrnn_tf.metrics.errors import (
    DatasetLayoutError,
    EvaluationInputError,
    ExtraFramesError,
    MissingResultsError,
    ResultNameError,
    SizeMismatchError,
    UnknownObjectError,
    UnreadableResultError,
)
from maskrnn_tf.metrics.evaluation import (
    EvaluationConfig,
    EvaluationResults,
    ObjectResult,
    SequenceResult,
    evaluate_dataset,
    evaluate_sequence,
    evaluated_frame_indices,
)
from maskrnn_tf.metrics.region import db_eval_iou
from maskrnn_tf.metrics.report import format_results, write_reports
from maskrnn_tf.metrics.statistics import db_statistics, decay_bin_ids
from maskrnn_tf.metrics.temporal import (
    ShapeContextConfig,
    shape_context,
    temporal_stability,
    temporal_stability_pair,
    temporal_stability_pairs,
)

__all__ = [
    "DatasetLayoutError",
    "EvaluationConfig",
    "EvaluationInputError",
    "EvaluationResults",
    "ExtraFramesError",
    "MissingResultsError",
    "ObjectResult",
    "ResultNameError",
    "SequenceResult",
    "SequenceSpec",
    "ShapeContextConfig",
    "SizeMismatchError",
    "UnknownObjectError",
    "UnreadableResultError",
    "boundary_tolerance",
    "db_eval_boundary",
    "db_eval_iou",
    "db_statistics",
    "decay_bin_ids",
    "detect_year",
    "evaluate_dataset",
    "evaluate_sequence",
    "evaluated_frame_indices",
    "f_measure",
    "format_results",
    "list_sequences",
    "seg2bmap",
    "shape_context",
    "temporal_stability",
    "temporal_stability_pair",
    "temporal_stability_pairs",
    "write_reports",
]
