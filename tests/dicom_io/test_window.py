import numpy as np
import pytest

from ichpipe.dicom_io.window import WindowPreset, apply_window


def test_brain_window_maps_edges_and_centre():
    w = WindowPreset(width=80, level=40)
    out = apply_window(np.array([-1000.0, 0.0, 40.0, 80.0, 3000.0]), w)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_window_is_linear_inside():
    w = WindowPreset(width=100, level=50)
    hu = np.linspace(0, 100, 11)
    out = apply_window(hu, w).astype(int)
    assert np.all(np.diff(out) > 0)
    assert out[0] == 0 and out[-1] == 255


def test_window_keeps_shape_and_writes_out():
    hu = np.zeros((2, 3, 4), dtype=np.float32)
    out = np.empty((2, 3, 4), dtype=np.uint8)
    res = apply_window(hu, WindowPreset(width=80, level=40), out=out)
    assert res is out and out.shape == (2, 3, 4)


def test_window_rejects_bad_width_and_out():
    with pytest.raises(ValueError, match="'width' must be positive"):
        WindowPreset(width=0, level=40)
    with pytest.raises(ValueError, match="'out' must be a uint8 array"):
        apply_window(np.zeros(3), WindowPreset(80, 40), out=np.zeros(3, dtype=np.float32))  # type: ignore[arg-type]
