"""A spin box showing a stored value in bigger units (MiB, MB/s, hours, days).

Promise: a value the person did not touch is given back exactly as it was
stored, even when the box shows it rounded (a part size of 7.5 MiB shown as 8
stays 7.5 MiB); a value the person changed is the box's value in the unit.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QSpinBox


class ScaledSpin:
    """A spin box (``spin``) over a value stored in ``unit``s' smaller parts."""

    def __init__(self, spin: QSpinBox | QDoubleSpinBox, unit: int) -> None:
        self.spin = spin
        self.unit = unit
        self._stored = 0
        self._shown = 0.0

    def show(self, stored: int) -> None:
        self._stored = stored
        shown = stored / self.unit
        if isinstance(self.spin, QSpinBox):
            self.spin.setValue(round(shown))
        else:
            self.spin.setValue(shown)
        self._shown = self.spin.value()  # rounded to what the box can show

    def value(self) -> int:
        # Untouched: give back the stored value, not its rounded display.
        if self.spin.value() == self._shown:
            return self._stored
        return round(self.spin.value() * self.unit)


def scaled_spin(
    unit: int,
    minimum: int,
    maximum: int,
    suffix: str,
    tooltip: str,
    *,
    special: str = "",
    decimals: int | None = None,
) -> ScaledSpin:
    """A whole-number box, or one with ``decimals``; ``special`` is shown at the minimum."""
    spin: QSpinBox | QDoubleSpinBox
    if decimals is None:
        spin = QSpinBox()
    else:
        spin = QDoubleSpinBox()
        spin.setDecimals(decimals)
    spin.setRange(minimum, maximum)
    spin.setSuffix(suffix)
    spin.setToolTip(tooltip)
    spin.setSpecialValueText(special)  # shown at the minimum; empty: the number
    return ScaledSpin(spin, unit)
