"""Optional dependencies fail with the extra to install, not with a bare ImportError."""

from __future__ import annotations

import sys

import pytest

from ichpipe.errors import IchpipeError, MissingExtraError
from ichpipe.extras import EXTRAS, import_extra


@pytest.mark.parametrize(("module", "extra"), [("pynetdicom", "pacs"), ("distributed", "dask"), ("SimpleITK", "bench")])
def test_a_missing_optional_module_names_its_extra(monkeypatch: pytest.MonkeyPatch, module: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(MissingExtraError, match=rf"pip install 'ichpipe\[{extra}\]'") as info:
        import_extra(module, purpose="This test")
    assert info.value.exit_code == 2 and isinstance(info.value, IchpipeError) and isinstance(info.value, ImportError)
    assert str(info.value).startswith(f"This test needs {module},")


def test_an_installed_optional_module_is_returned() -> None:
    assert import_extra("pynetdicom", purpose="This test") is sys.modules["pynetdicom"]


def test_only_optional_modules_are_accepted() -> None:
    with pytest.raises(ValueError, match="Argument 'module' must be an optional dependency"):
        import_extra("numpy", purpose="This test")
    assert set(EXTRAS.values()) == {"dask", "pacs", "bench"}


def test_pacs_delivery_without_pynetdicom_names_the_pacs_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ichpipe.pipeline.batch.pacs.store_scu import make_ae
    from ichpipe.pipeline.config.pacs_config import PacsConfig

    monkeypatch.setitem(sys.modules, "pynetdicom", None)
    with pytest.raises(MissingExtraError, match=r"ichpipe\[pacs\]"):
        make_ae(PacsConfig())
