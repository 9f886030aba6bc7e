import numpy as np
import pytest

from emolive.realtime.tracking import IoUTracker, iou_matrix


def test_iou_matrix_values():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_moving_faces_keep_their_ids_and_order_does_not_matter():
    tracker = IoUTracker()
    a, b = [10, 10, 50, 50], [200, 10, 50, 50]
    assert tracker.update([a, b]) == [1, 2]
    for step in range(1, 10):
        moved_a = [10 + 6 * step, 10, 50, 50]
        moved_b = [200 - 6 * step, 10, 50, 50]
        assert tracker.update([moved_b, moved_a]) == [2, 1]


def test_track_survives_short_miss_then_expires():
    tracker = IoUTracker(max_age=2)
    box = [100, 100, 40, 40]
    assert tracker.update([box]) == [1]
    assert tracker.update([]) == []
    assert tracker.update([box]) == [1]  # one missed frame: same person
    for _ in range(3):
        tracker.update([])
    assert tracker.update([box]) == [2]  # gone longer than max_age: a new id


def test_new_person_gets_new_id_and_reset_restarts_ids():
    tracker = IoUTracker()
    assert tracker.update([[0, 0, 30, 30]]) == [1]
    assert tracker.update([[0, 0, 30, 30], [300, 300, 30, 30]]) == [1, 2]
    tracker.reset()
    assert tracker.update([[300, 300, 30, 30]]) == [1]


def test_constant_velocity_prediction_bridges_a_gap_for_fast_faces():
    tracker = IoUTracker(min_iou=0.3)
    for step in range(5):
        tracker.update([[20 * step, 0, 40, 40]])
    tracker.update([])  # missed while still moving
    assert tracker.update([[20 * 6, 0, 40, 40]]) == [1]


def test_invalid_parameters():
    with pytest.raises(ValueError):
        IoUTracker(min_iou=1.5)
