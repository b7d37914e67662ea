"""Logistic regression on the encoded columns (one-hot categoricals), a cheap baseline.

Explained by shap's LinearExplainer on the design matrix, its dummies summed back to their
column.
"""

from __future__ import annotations

from core.kinds.tabular import TabularKind


class LogisticRegression(TabularKind):
    name = "logreg"
    label = "Logistic regression (baseline)"
    family = "baseline"
    estimator = "linear"
    explainer = "linear"


KIND = LogisticRegression()
