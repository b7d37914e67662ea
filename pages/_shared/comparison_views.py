"""The Runs page's paired comparison: the best transformer against the best baseline of each
target, in plain words first, the test's name and the seeds' spread in an expander."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import streamlit as st

from core.comparison import METRIC_WORDS
from core.runs import list_runs
from pages._shared.resources import leaderboard_comparison
from pages._shared.widgets import user_errors

_OUTCOME = {
    "transformer_better": ("success", "The transformer is better"),
    "baseline_better": ("warning", "The baseline is better"),
    "not_distinguishable": ("info", "No clear winner"),
}


def comparison_panel(dataset_id: int, targets: Iterable[str]) -> None:
    """One paired comparison per target that has a finished transformer and baseline."""
    runs_key = tuple((r.id, r.status, str(r.artifact_path)) for r in list_runs(dataset_id))
    for target in targets:
        with user_errors():
            result = leaderboard_comparison(dataset_id, target, runs_key)
            if result is None:
                st.caption(
                    f"Transformer vs baseline ({target}): train a transformer and a baseline "
                    "on the same split to compare them on the same rows."
                )
                continue
            kind, title = _OUTCOME[result.outcome]
            st.subheader(f"Transformer vs baseline: {target}")
            getattr(st, kind)(f"**{title}.** {result.sentence}")
            for note in result.notes:
                st.caption(note)
            with st.expander("How this is tested"):
                words = METRIC_WORDS.get(result.metric, result.metric)
                st.markdown(
                    f"- Test: **{result.method_label}**, two-sided; difference = transformer "
                    f"− baseline in {words} ({'higher' if result.higher_is_better else 'lower'} "
                    "is better).\n"
                    f"- p-value {result.p_value:.4g}; 95% interval {result.ci_low:.4g} to "
                    f"{result.ci_high:.4g}; {result.rows:,} paired test rows of split "
                    f"(seed) {result.seed}.\n"
                    f"- Each family's best was picked on the {result.picked_on}. The ROI "
                    "verdict resamples the same rows the same way."
                )
                if result.spreads:
                    st.caption("Runs repeated with several seeds (each seed is its own split):")
                    st.dataframe(
                        pd.DataFrame(
                            {
                                "model": s.config,
                                "seeds": ", ".join(map(str, s.seeds)),
                                "mean": s.mean,
                                "sd": s.sd,
                                "min": s.low,
                                "max": s.high,
                            }
                            for s in result.spreads
                        ),
                        hide_index=True,
                    )
