"""The ``expansion:`` section of ``config.yaml``: a named definition of hematoma expansion, with overrides."""

from __future__ import annotations

from dataclasses import dataclass

from ichpipe.pipeline.serial.expansion import PRESETS, ExpansionRule

__all__ = ["ExpansionConfig"]


@dataclass(frozen=True)
class ExpansionConfig:
    """The ``expansion:`` section of ``config.yaml``.

    ``preset`` names a definition in :data:`PRESETS`; each number left
    ``None`` (null) comes from it, a number given overrides it, and ``.inf``
    switches that threshold (or the window) off.
    """

    preset: str = "contest_2023e"
    absolute_ml: float | None = None
    relative_pct: float | None = None
    window_h: float | None = None
    inclusive: bool | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(
                f"expansion.preset '{self.preset}' is not a known preset; choose one of "
                f"{', '.join(PRESETS)} (and override numbers as needed)."
            )
        self.rule()  # validates the numbers

    def rule(self) -> ExpansionRule:
        """The rule this configuration defines."""
        base = PRESETS[self.preset]
        if (self.absolute_ml, self.relative_pct, self.window_h, self.inclusive) == (None, None, None, None):
            return base
        rule = ExpansionRule(
            name="custom",
            absolute_ml=base.absolute_ml if self.absolute_ml is None else self.absolute_ml,
            relative_pct=base.relative_pct if self.relative_pct is None else self.relative_pct,
            window_h=base.window_h if self.window_h is None else self.window_h,
            inclusive=base.inclusive if self.inclusive is None else self.inclusive,
            reference=f"{base.name} with overrides",
        )
        same = (rule.absolute_ml, rule.relative_pct, rule.window_h, rule.inclusive) == (
            base.absolute_ml, base.relative_pct, base.window_h, base.inclusive
        )
        return base if same else rule
