"""A compiled backend that cannot be loaded: one warning on the first fallback, shown by info, shadowing detected."""

import warnings

import pytest
import torch

import vlengine.ops as ops
from vlengine import info
from vlengine.ops import _backend, _extension


@pytest.fixture
def missing_extension(monkeypatch):
    """vlengine._C as if it were not built: the loader's import fails and its memory is cleared."""
    def fail(name):
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_extension, "_import", fail)
    for attr in ("_module", "_error", "_cuda_module", "_cuda_error"):
        monkeypatch.setattr(_extension, attr, None)
    monkeypatch.setattr(_backend, "_warned", set())


def test_first_fallback_warns_once_naming_backend_reason_and_fix(missing_extension, rng):
    images = torch.randn(2, 3, 8, 8, generator=rng)
    boxes = torch.tensor([[0, 1.0, 1.0, 4.0, 3.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ops.mask_pixels(images, boxes)
        ops.mask_pixels(images, boxes)
        ops.box_iou_batched(torch.rand(1, 2, 4, generator=rng).sort(-1).values,
                            torch.rand(1, 3, 4, generator=rng).sort(-1).values)
    fallbacks = [w for w in caught if "cannot be loaded" in str(w.message)]
    assert len(fallbacks) == 1, [str(w.message) for w in caught]
    message = str(fallbacks[0].message)
    assert "'cpu' backend" in message and "vlengine._C could not be imported" in message
    assert "pip install --no-build-isolation -e ." in message
    assert fallbacks[0].filename == __file__  # attributed to the caller's line, not to vlengine's internals
    torch.testing.assert_close(out, ops.mask_pixels(images, boxes, backend="reference"))


def test_explicit_reference_backend_does_not_warn(missing_extension, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.mask_pixels(torch.randn(1, 1, 4, 4, generator=rng), torch.zeros(0, 5), backend="reference")


def test_explicit_compiled_backend_fails_with_the_reason(missing_extension):
    with pytest.raises(RuntimeError, match="backend 'cpu' cannot run here: vlengine._C could not be imported"):
        ops.mask_pixels(torch.randn(1, 1, 4, 4), torch.zeros(0, 5), backend="cpu")


def test_info_reports_the_missing_build(missing_extension):
    text = info.report()
    assert "vlengine._C     NOT LOADED: vlengine._C could not be imported" in text
    assert "fall back to their pure-PyTorch references" in text
    assert "default=reference" in text


def _fake_extension(package_dir):
    package_dir.mkdir(parents=True)
    (package_dir / "__init__.py").write_text("")
    so = package_dir / "_C.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"")
    return so


def test_unbuilt_checkout_ahead_of_an_installed_build_is_detected(tmp_path):
    checkout = tmp_path / "checkout" / "vlengine"
    checkout.mkdir(parents=True)
    installed = _fake_extension(tmp_path / "site-packages" / "vlengine")
    search = [str(tmp_path / "checkout"), str(tmp_path / "site-packages")]
    assert _extension.shadowed_build(checkout, search) == (str(checkout.resolve()), str(installed))
    # a built checkout is not shadowing anything, nor is an unbuilt one with no build elsewhere
    assert _extension.shadowed_build(installed.parent, search) is None
    assert _extension.shadowed_build(checkout, [str(tmp_path / "checkout")]) is None


def test_the_fix_hint_names_the_shadowing_checkout(monkeypatch):
    monkeypatch.setattr(_extension, "shadowed_build", lambda: ("/src/vlengine", "/site/vlengine/_C.so"))
    hint = _extension._fix_hint()
    assert "/src/vlengine" in hint and "/site/vlengine/_C.so" in hint
    assert "pip install --no-build-isolation -e ." in hint
