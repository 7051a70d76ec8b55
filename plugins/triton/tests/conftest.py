import pytest
from _models import onnx_package, torch_package

pytest_plugins = ["sextant.testing.fixtures", "sextant_triton.testing", "_postgres"]


@pytest.fixture(scope="session")
def packages(tmp_path_factory):
    """A torch and an ONNX package, optimized once per test session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("packages")
        yield {"torch": torch_package(root / "torch" / "ws"), "onnx": onnx_package(root / "onnx" / "ws")}


@pytest.fixture(scope="session")
def generation_deployment(tmp_path_factory):
    """``_causal_lm``'s tiny random Llama as a text-generation package (``--new-tokens`` 4),
    deployed once per session by ``sextant deploy triton`` as the streaming model ``lm``:
    ``(repository, deployment)``, the package at ``repository.parent / "ws"``."""
    from _causal_lm import GENERATION_NEW_TOKENS, generation_package
    from sextant_triton.repository import deploy_package

    root = tmp_path_factory.mktemp("generation")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEXTANT_CACHE_DIR", str(root / "cache"))
        package = generation_package(root, new_tokens=GENERATION_NEW_TOKENS)
    return root / "models", deploy_package(package.path, root / "models", name="lm")
