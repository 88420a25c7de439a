"""CooledExponentialDecay: values against the formula by hand, Keras' ExponentialDecay without a cooldown,
serialization round trips, and the optimizer a training builds from the config."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from maskrnn_tf.training.config import TrainConfig
from maskrnn_tf.training.config_bounds import check_config_bounds
from maskrnn_tf.training.cooled_exponential_decay import CooledExponentialDecay
from maskrnn_tf.training.steps import current_learning_rate, make_optimizer


def _reference(step, initial=3e-4, decay_steps=1000, rate=0.5, total=2500, cooldown=500):
    value = initial * rate ** (step / decay_steps)
    return value * min(1.0, max(0.0, (total - step) / cooldown)) if cooldown else value


@pytest.mark.parametrize("step", [0, 1, 999, 1500, 1999, 2000, 2001, 2250, 2499, 2500, 2600])
def test_values_match_the_formula(step):
    schedule = CooledExponentialDecay(3e-4, 1000, 0.5, total_steps=2500, cooldown_steps=500)
    np.testing.assert_allclose(float(schedule(step)), _reference(step), rtol=1e-5, atol=1e-12)


def test_by_hand_points_of_the_cooldown():
    schedule = CooledExponentialDecay(1.0, 10, 0.5, total_steps=40, cooldown_steps=20)
    # step 20: 0.5 ** 2 at full strength; step 30: 0.5 ** 3 halved by the cooldown; step 40 and after: 0.
    assert float(schedule(20)) == pytest.approx(0.25)
    assert float(schedule(30)) == pytest.approx(0.0625)
    assert float(schedule(40)) == 0.0 and float(schedule(45)) == 0.0


def test_without_cooldown_it_is_keras_exponential_decay():
    ours = CooledExponentialDecay(3e-4, 1000, 0.5, total_steps=2500)
    keras_schedule = keras.optimizers.schedules.ExponentialDecay(3e-4, 1000, 0.5)
    for step in (0, 17, 1000, 2400, 5000):
        np.testing.assert_allclose(float(ours(step)), float(keras_schedule(step)), rtol=1e-6)


def test_config_round_trip():
    schedule = CooledExponentialDecay(2e-4, 700, 0.3, total_steps=900, cooldown_steps=100)
    config = json.loads(json.dumps(keras.optimizers.schedules.serialize(schedule)))
    again = keras.optimizers.schedules.deserialize(config)
    assert isinstance(again, CooledExponentialDecay)
    assert again.get_config() == schedule.get_config()
    for step in (0, 800, 850, 900):
        assert float(again(step)) == float(schedule(step))


def test_an_optimizer_with_it_survives_a_checkpoint_round_trip(tmp_path):
    config = TrainConfig().override({"optim.learning_rate": 1e-2, "optim.cooldown_steps": 4, "stage_a_steps": 6,
                                     "stage_b_steps": 2})
    var = tf.Variable([1.0, 2.0])
    optimizer = make_optimizer(config, "float32")
    for _ in range(5):
        optimizer.apply_gradients([(tf.constant([1.0, 1.0]), var)])
    path = tf.train.Checkpoint(optimizer=optimizer, var=var).save(str(tmp_path / "ckpt"))
    fresh_var = tf.Variable([0.0, 0.0])
    fresh = make_optimizer(config, "float32")
    fresh.build([fresh_var])
    tf.train.Checkpoint(optimizer=fresh, var=fresh_var).restore(path).assert_consumed()
    # Restored at iteration 5 of 8, the rate is in the cooldown: 1e-2 * 0.5 ** (5 / 1000) * (8 - 5) / 4.
    np.testing.assert_allclose(float(current_learning_rate(fresh)), 1e-2 * 0.5 ** 0.005 * 0.75, rtol=1e-5)


def test_the_training_optimizer_cools_down_to_zero_at_the_last_step():
    config = TrainConfig().override({"optim.learning_rate": 1e-3, "optim.cooldown_steps": 2, "stage_a_steps": 1,
                                     "stage_b_steps": 2})
    var = tf.Variable([1.0])
    optimizer = make_optimizer(config, "mixed_float16")  # under the LossScaleOptimizer too
    seen = []
    for _ in range(3):
        seen.append(float(current_learning_rate(optimizer)))
        optimizer.apply_gradients([(tf.constant([1.0]), var)])
    np.testing.assert_allclose(seen, [1e-3, 1e-3 * 0.5 ** 0.001, 1e-3 * 0.5 ** 0.002 * 0.5], rtol=1e-5)
    assert float(current_learning_rate(optimizer)) == 0.0
    # The last update applied moved the weight; the rate after the run is 0.
    assert var.numpy()[0] < 1.0


def test_skipped_float16_updates_do_not_delay_the_schedule():
    """The LossScaleOptimizer skips an update whose gradient is not finite without counting it (`iterations`
    stays): a schedule on `iterations` then lagged the run's steps by every skip, and a run with k skips ended its
    cooldown at about (k + 1) / cooldown_steps of the rate instead of 0. On the training's step counter it does not."""
    config = TrainConfig().override({"optim.learning_rate": 1e-3, "optim.cooldown_steps": 2, "stage_a_steps": 1,
                                     "stage_b_steps": 2})
    var, step = tf.Variable([1.0]), tf.Variable(0, dtype=tf.int64)
    optimizer = make_optimizer(config, "mixed_float16", step=step)
    seen = []
    for gradient in (float("inf"), 1.0, 1.0):  # the first update is skipped (and the loss scale halved)
        seen.append(float(current_learning_rate(optimizer)))
        optimizer.apply_gradients([(tf.constant([gradient]), var)])
        step.assign_add(1)  # as TrainSteps counts every step, skipped or not
    assert int(optimizer.iterations.numpy()) == 2 and float(optimizer.dynamic_scale.numpy()) == 2.0**14
    np.testing.assert_allclose(seen, [1e-3, 1e-3 * 0.5 ** 0.001, 1e-3 * 0.5 ** 0.002 * 0.5], rtol=1e-5)
    assert float(current_learning_rate(optimizer)) == 0.0


def test_bad_cooldowns_are_refused_by_name():
    with pytest.raises(ValueError, match="optim.cooldown_steps=-1: must be >= 0"):
        check_config_bounds(TrainConfig().override({"optim.cooldown_steps": -1}))
    with pytest.raises(ValueError, match=r"optim.cooldown_steps=30: more than the run's 20 steps"):
        check_config_bounds(TrainConfig().override({"optim.cooldown_steps": 30, "stage_a_steps": 10,
                                                    "stage_b_steps": 10}))
    check_config_bounds(TrainConfig().override({"optim.cooldown_steps": 20, "stage_a_steps": 10,
                                                "stage_b_steps": 10}))
    with pytest.raises(ValueError, match="cooldown_steps=5: must be between 0 and the run's 4 steps"):
        CooledExponentialDecay(1e-3, 10, 0.5, total_steps=4, cooldown_steps=5)
