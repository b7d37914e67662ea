"""What-if editor parts: the edited fields against the original, the decision, and the
smallest change that would flip it (a counterfactual)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.counterfactuals import counterfactuals, suggest_immutable
from core.runs import RunInfo
from pages._shared.widgets import user_errors


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.isclose(float(a), float(b), rtol=0, atol=1e-12))
    except (TypeError, ValueError):
        return str(a) == str(b)


def edited_fields(original: dict, edited: dict, label: str) -> None:
    """A table of the fields that differ from the record the editor started from."""
    changed = [
        {"column": c, f"original ({label})": str(original.get(c)), "edited": str(v)}
        for c, v in edited.items()
        if not _same(original.get(c), v)
    ]
    if changed:
        st.caption(f"{len(changed)} field(s) changed from the {label}:")
        st.dataframe(pd.DataFrame(changed), hide_index=True)
    else:
        st.caption(f"No field changed yet: this is the {label} as it is.")


def decision(run: RunInfo, probability: float, threshold: float) -> None:
    flagged = probability >= threshold
    words = (
        f"**Flagged** as {run.positive_class}" if flagged else f"**Not flagged** ({run.classes[0]})"
    )
    (st.error if flagged else st.success)(
        f"{words}: P({run.positive_class}) = {probability:.3f} "
        f"{'≥' if flagged else '<'} the threshold {threshold:.3f}."
    )


def counterfactual_panel(
    run: RunInfo, model: Any, row: pd.DataFrame, probability: float, threshold: float, text: bool
) -> None:
    """'What would change the decision?': the smallest change of at most 3 actionable
    columns, with values seen in training."""
    st.markdown("**What would change the decision?**")
    if text:
        st.info(
            "Counterfactuals cover the tabular columns; this model reads only text, so try "
            "editing the text above instead."
        )
        return
    columns = [c for c in run.features if c in row.columns]
    immutable = st.multiselect(
        "Columns that must not change",
        columns,
        default=suggest_immutable(columns),
        key="whatif_immutable",
        help="Suggested: age-like and protected columns. Change the list as the case needs; "
        "nothing is assumed without being shown here.",
    )
    if not st.button("Find the smallest change", key="whatif_counterfactual"):
        return
    with user_errors():
        found = counterfactuals(
            run.id, row, np.array([probability]), threshold, immutable=immutable, model=model
        )[0]
        if not found.found:
            st.warning(found.reason)
            return
        table = pd.DataFrame(
            [
                {"column": c, "now": str(a), "change to": str(b)}
                for c, (a, b) in found.changes.items()
            ]
        )
        st.dataframe(table, hide_index=True)
        after = found.probability_after
        st.caption(
            f"P({run.positive_class}) would go from {probability:.3f} to {after:.3f}, "
            f"{'below' if found.flagged_before else 'to or above'} the threshold "
            f"{threshold:.3f}. Only values seen in training are used; at most 3 columns change."
        )
