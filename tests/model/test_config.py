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
    "field,value", [("width", 0.0), ("side_stages", ("conv6_1",)), ("box_enlarge", 0.9), ("delta_weights", (1.0,))]
)
def test_invalid_values_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        MaskRNNConfig(**{field: value})
