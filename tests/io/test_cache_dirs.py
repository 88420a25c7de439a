"""The user cache folder that the precision measurement and the zip extractions share."""
import os

import pytest

from maskrnn_tf.data import sequences
from maskrnn_tf.io.cache_dirs import user_cache_dir
from maskrnn_tf.training import precision


@pytest.mark.parametrize("value, expected", [
    (None, "{home}/.cache/maskrnn_tf"),          # unset: ~/.cache
    ("", "{home}/.cache/maskrnn_tf"),            # empty counts as unset
    ("{tmp}/xdg", "{tmp}/xdg/maskrnn_tf"),
    ("~/xdg", "{home}/xdg/maskrnn_tf"),          # a quoted ~ (a service's environment file) reached us unexpanded
    ("rel/xdg", "{home}/.cache/maskrnn_tf"),     # relative: invalid by the XDG spec, which says to ignore it
])
def test_user_cache_dir_follows_xdg_cache_home(monkeypatch, tmp_path, value, expected):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    if value is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", value.format(tmp=tmp_path))
    want = expected.format(home=home, tmp=tmp_path)
    assert user_cache_dir() == want
    # Both users of the folder: a "~" folder in the working directory was where they wrote before.
    assert precision.default_speed_cache() == os.path.join(want, "precision.json")
    assert sequences.default_extract_dir() == os.path.join(want, "extracted")
