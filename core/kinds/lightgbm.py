"""LightGBM: gradient-boosted trees over tabular rows, a cheap baseline.

Explained by shap's TreeExplainer (path-dependent TreeSHAP, exact, over the trees' own
cover); when the user chooses the background rows, by Payoff's interventional estimator on
the booster instead (shap's interventional mode miscomputes LightGBM's categorical splits).
"""

from __future__ import annotations

from core.kinds.tabular import TabularKind


class LightGBM(TabularKind):
    name = "lightgbm"
    label = "LightGBM (baseline)"
    family = "baseline"
    estimator = "gbdt"
    explainer = "tree"

    def explainer_for(self, explicit_background: bool) -> str | None:
        return "interventional" if explicit_background else "tree"


KIND = LightGBM()
