"""MaskRNNConfig: strict overrides and dict round trip."""
import pytest

from maskrnn_tf.model import MaskRNNConfig


def test_round_trip_and_strict_override():
    cfg = MaskRNNConfig(width=0.25, side_stages=("conv3_3", "conv5_3"))
    assert MaskRNNConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.override({"fc_units": 8}).fc_units == 8
    with pytest.raises(ValueError, match="fc_unit"):
        cfg.override({"fc_unit": 8})


@pytest.mark.parametrize(
    "field,value", [("width", 0.0), ("side_stages", ("conv6_1",)), ("box_enlarge", 0.9), ("delta_weights", (1.0,)),
                    # NaN zeroed every probability map in silence, infinity turned the restriction off
                    ("box_enlarge", float("nan")), ("box_enlarge", float("inf")),
                    ("flow_reference", "mean"), ("flow_reference", "Median"),
                    # box targets are multiplied by the weights, predictions divided: NaN or 0 trained in silence
                    ("delta_weights", (10.0, float("nan"), 5.0, 5.0)), ("delta_weights", (10.0, 10.0, 0.0, 5.0))]
)
def test_invalid_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        MaskRNNConfig(**{field: value})


@pytest.mark.parametrize("field,value,message", [
    ("side_channels", "abc", "side_channels='abc': expected an integer, got a string"),
    ("use_flow_stream", "False", "use_flow_stream='False': expected a boolean (true or false), got a string"),
    ("fc_units", 8.5, "fc_units=8.5: expected an integer, got a float"),
    ("delta_weights", [1.0, 2.0, "x", 4.0], "delta_weights=[1.0, 2.0, 'x', 4.0]: expected a list of 4 numbers"),
])
def test_values_of_the_wrong_type_are_refused(field, value, message):
    """A saved model's config (get_config) and every override go through `override`: typed, like the flags."""
    with pytest.raises(ValueError) as err:
        MaskRNNConfig().override({field: value})
    assert message in str(err.value)
    with pytest.raises(ValueError):
        MaskRNNConfig.from_dict({field: value})


def test_lists_become_tuples_and_integers_are_numbers():
    cfg = MaskRNNConfig.from_dict({"side_stages": ["conv5_3"], "delta_weights": [1, 1, 2, 2], "box_enlarge": 2})
    assert cfg.side_stages == ("conv5_3",) and cfg.delta_weights == (1, 1, 2, 2) and cfg.box_enlarge == 2
    assert MaskRNNConfig.from_dict({"vgg_weights": None}).vgg_weights is None
