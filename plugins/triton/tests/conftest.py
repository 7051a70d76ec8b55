import pytest
from _models import onnx_package, torch_package

pytest_plugins = ["sextant.testing.fixtures", "sextant_triton.testing"]


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """A torch and an ONNX package, optimized once per test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("packages")
        yield {"torch": torch_package(root / "torch" / "ws"), "onnx": onnx_package(root / "onnx" / "ws")}
