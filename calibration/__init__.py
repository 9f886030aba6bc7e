"""emolive.calibration: making model outputs trustworthy after training.

* :mod:`.temperature`: temperature scaling of confidences and expected calibration error (ECE).
"""

from .temperature import expected_calibration_error, fit_temperature

__all__ = ["expected_calibration_error", "fit_temperature"]
