import os

import pytest
import torch

# two cores: keep torch from oversubscribing them when tests run beside other work
torch.set_num_threads(int(os.environ.get("PARDECODE_TEST_THREADS", "1")))


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where device-independent tests run: $PARDECODE_TEST_DEVICE ("cuda", "cuda:1"; default "cpu").

    `perf/gpu_check.py` runs the tests that take this fixture with it set to the GPU; a device this
    machine lacks fails the test instead of quietly running it on the CPU.
    """
    from pardecode.adapters.hf_loading import parse_device
    from pardecode.core.errors import ConfigError

    name = os.environ.get("PARDECODE_TEST_DEVICE", "cpu")
    try:
        return parse_device(name)
    except ConfigError as err:
        pytest.fail(f"PARDECODE_TEST_DEVICE={name!r}: {err}")


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Each test sees the plugin registry as built from the current sys.path."""
    from pardecode.core.plugins import reset_plugins

    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture(autouse=True)
def _private_profile_cache(tmp_path_factory, monkeypatch):
    """Cost profiles that tests measure go to a temporary directory, not the user's cache."""
    monkeypatch.setenv("PARDECODE_CACHE", str(tmp_path_factory.getbasetemp() / "pardecode-cache"))


@pytest.fixture
def interrupted_at():
    """interrupted_at(fn, n): `fn`, except that its n-th call raises KeyboardInterrupt (Ctrl-C mid-run)."""

    def wrap(fn, n):
        calls = []

        def wrapped(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return fn(*args, **kwargs)

        return wrapped

    return wrap
