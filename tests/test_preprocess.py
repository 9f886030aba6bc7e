import numpy as np
import pytest

from emolive.models.errors import InputError
from emolive.models.preprocess import PreprocessSpec, crop_face, preprocess_faces, square_crop_box, to_gray_uint8

SPEC = PreprocessSpec()


def test_gray_conversion_accepts_the_formats_users_have():
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[..., 2] = 255  # pure red
    assert to_gray_uint8(bgr).shape == (10, 12)
    assert 70 <= to_gray_uint8(bgr)[0, 0] <= 80  # red's luma weight is ~0.299
    bgra = np.dstack([bgr, np.full((10, 12), 7, np.uint8)])
    np.testing.assert_array_equal(to_gray_uint8(bgra), to_gray_uint8(bgr))
    assert to_gray_uint8(np.full((4, 4), 65535, np.uint16)).max() == 255
    assert to_gray_uint8(np.full((4, 4, 1), 0.5, np.float32))[0, 0] == 128


def test_float_images_on_the_0_to_255_scale_are_refused_not_turned_white():
    with pytest.raises(InputError, match="must be in \\[0, 1\\]; divide by 255"):
        to_gray_uint8(np.full((4, 4, 3), 128.0, np.float32))
    assert to_gray_uint8(np.full((4, 4), 1.02, np.float64))[0, 0] == 255  # a little interpolation overshoot is clipped
    assert to_gray_uint8(np.full((4, 4), np.nan, np.float32))[0, 0] == 0


@pytest.mark.parametrize("bad", [np.zeros((0, 5), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.int64), "x"])
def test_gray_conversion_rejects_bad_images_with_input_error(bad):
    with pytest.raises(InputError):
        to_gray_uint8(bad)


def test_fer_image_preprocessing_is_plain_normalization():
    image = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    out = preprocess_faces(image, None, SPEC)
    assert out.shape == (1, 1, 48, 48) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], (image / 255.0 - SPEC.mean) / SPEC.std, atol=1e-5)


def test_square_box_is_centred_and_enlarged_by_margin():
    x, y, w, h = square_crop_box((100, 50, 40, 60), 0.25)
    assert w == h == 90
    assert (x + w / 2, y + h / 2) == pytest.approx((120, 80), abs=0.5)


def test_face_cut_by_border_keeps_its_position_in_the_crop():
    gray = np.zeros((100, 100), np.uint8)
    gray[:, :50] = 200  # left half bright
    crop = crop_face(gray, (-20, 20, 100, 60), PreprocessSpec(margin=0.0))
    assert crop.shape == (48, 48)
    # The out-of-frame left part is replicated from the border (bright), the right part stays dark.
    assert crop[:, :20].min() == 200 and crop[:, -5:].max() == 0


def test_preprocess_batches_all_faces_and_handles_none():
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    assert preprocess_faces(image, [(10, 10, 30, 30), (80, 40, 50, 40)], SPEC).shape == (2, 1, 48, 48)
    assert preprocess_faces(image, [], SPEC).shape == (0, 1, 48, 48)
    assert preprocess_faces(image, None, SPEC).shape == (1, 1, 48, 48)


def test_spec_round_trips_and_validates():
    spec = PreprocessSpec(size=64, margin=0.3, mean=0.4, std=0.2)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        PreprocessSpec(std=0)
