"""The default model is a plugin: it registers through the hook, and names that moved keep working.

Which package may import which is tested in test_import_graph.py."""

from __future__ import annotations

import pytest


def test_the_default_model_registers_through_the_plugin_hook():
    from pardecode.core.plugins import plugins

    registered_by = {plugins().backbones.get(name).plugin for name in ("fashion", "fashion-sjd2")}
    assert registered_by == {"pardecode.fashion.plugin"}


def test_names_that_moved_to_the_default_models_plugin_still_import_from_the_adapters():
    from pardecode import adapters
    from pardecode.fashion import plugin

    for name in ("FASHION_DIR", "FASHION_SJD2_DIR", "load_fashion", "load_fashion_sjd2"):
        assert getattr(adapters, name) is getattr(plugin, name)
    with pytest.raises(AttributeError):
        adapters.FASHION_NOWHERE  # noqa: B018
