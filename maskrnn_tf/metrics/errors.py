"""Errors raised by the DAVIS evaluation for bad inputs; every message names the file or sequence and the fix."""
from __future__ import annotations


class EvaluationInputError(ValueError):
    """Base class: the DAVIS root or the results folder cannot be evaluated as given."""


class DatasetLayoutError(EvaluationInputError):
    """The DAVIS root lacks a file or folder of the expected layout (image set list, annotations)."""


class MissingResultsError(EvaluationInputError):
    """The results folder, a sequence folder in it, or result frames of evaluated frames are missing."""


class ExtraFramesError(EvaluationInputError):
    """The results hold frames that the ground truth of that sequence does not have."""


class ResultNameError(EvaluationInputError):
    """A result file is not named as davis2017-evaluation reads it (`<frame>.png`, lower-case extension)."""


class UnknownObjectError(EvaluationInputError):
    """A result frame holds an object id that the ground truth does not define."""


class SizeMismatchError(EvaluationInputError):
    """A result frame's size differs from its ground-truth annotation."""


class UnreadableResultError(EvaluationInputError):
    """A result frame is unreadable, or not an image of object ids (e.g. RGB in colours outside the palette)."""
