"""Train: pick a dataset and candidate models, queue them as training jobs, watch them."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.datasets import list_datasets
from core.jobs import ensure_worker, launch_worker_for, reap_dead_jobs, request_cancel
from core.kinds import registry
from core.runs import list_runs
from core.stacking import queue_suggested_stack, suggest_text_stack
from core.training import create_run, queue_candidates
from pages._shared.auth import current_actor, read_only_note
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_dataset
from pages._shared.widgets import empty_state, fmt_seconds, user_errors

use_app_navigation()

st.title("Train")
actor = current_actor()
read_only_note("train")

datasets = list_datasets()
dataset = pick_dataset(datasets, key="train_dataset", empty_message="Add a dataset first.")
dataset_id = dataset.id
kinds = {c.name: c.kind for c in dataset.schema.columns}
roles = dataset.roles
if not roles.target:
    empty_state(
        "This dataset has no target yet: choose one on the Data page.", "pages/data.py", "Data"
    )
    st.stop()

tabular_features = [c for c in roles.features if kinds.get(c) in ("numeric", "categorical")]
text_features = [c for c in roles.features if kinds.get(c) == "text"]
st.markdown(
    f"Target **{roles.target}**"
    + (f" (flagging **{roles.positive_class}**)" if roles.positive_class else "")
    + f" · {len(tabular_features)} tabular feature(s)"
    + (f" · text: {', '.join(text_features)}" if text_features else "")
)

candidates: list[str] = []
size = None
offered = {"tabular": tabular_features, "text": text_features}
with st.container(border=True):
    st.markdown("**Candidates** — all train on the same stored train / validation / test split.")
    for column_input in ("tabular", "text"):
        kinds_here = registry.for_input(column_input)
        if not offered[column_input]:
            continue
        for col, kind in zip(st.columns(len(kinds_here)), kinds_here, strict=True):
            ticked = kind.preselected or not tabular_features
            if col.checkbox(kind.label, value=ticked, key=f"cand_{kind.name}"):
                candidates.append(kind.name)
            if kind.sizes():
                size = col.selectbox(
                    "Size",
                    list(kind.sizes()),
                    index=list(kind.sizes()).index(kind.default_size),
                    key="ft_size",
                    help="tiny 1×32, small 2×64, default 3×192 (the paper's configuration).",
                )
    stack_mixed = False
    if text_features and tabular_features:
        stack_mixed = st.checkbox(
            "Text + tabular: stack the text transformer with the FT-Transformer (its own leaderboard row)",
            value=True,
            key="cand_stack",
            help="Both train first; a logistic regression on their log-odds is fitted on the validation part.",
        )
    budget = st.slider("Time budget per model (seconds)", 10, 1200, 120, step=10, key="budget")
    tune = st.checkbox(
        "Tune each tabular model within its budget",
        value=True,
        key="tune",
        help="Optuna tries settings on the validation part (same budget and trial cap for "
        "every model, defaults first) and keeps the best.",
    )
    seed = st.number_input("Seed", 0, 10_000, 0, key="seed")
    allow_pii = st.checkbox(
        "Allow columns flagged as personal data among the features",
        value=False,
        key="allow_pii",
        help="Columns that look like e-mails, phone, card or id numbers, names or addresses "
        "are refused as features unless you opt in here.",
    )
    start = st.button(
        "Start training", type="primary", disabled=not candidates or not actor.may("train")
    )

if start:
    with user_errors():
        run_ids = queue_candidates(
            dataset_id,
            candidates,
            size=size,
            seed=int(seed),
            time_budget_s=float(budget),
            allow_pii=allow_pii,
            stack_text_with_tabular=stack_mixed,
            tune=tune,
            actor=actor,
        )
        launch_worker_for(run_ids)
        st.session_state["train_started"] = run_ids
        st.toast(f"Started {len(run_ids)} run(s) in the background.")


@st.fragment(run_every=2)
def live_panel() -> None:
    runs = list_runs(dataset_id)
    if not runs:
        st.info("No runs for this dataset yet.")
        return
    active = [r for r in runs if r.status in ("queued", "running")]
    if active:
        reap_dead_jobs()  # a worker that died is noticed here too
    if any(r.status == "queued" for r in active):
        ensure_worker()  # zero set-up: a local worker when none runs (PAYOFF_LOCAL_WORKER)
    recent = active or runs[:3]
    st.subheader("Training now" if active else "Latest runs")
    for run in recent:
        with st.container(border=True):
            history = run.progress.get("history", [])
            top = st.columns([3, 2, 2, 1])
            top[0].markdown(f"**{run.label}** · {run.status} · {run.progress.get('stage', '')}")
            top[1].markdown(f"Device: {run.device_name or run.device or '–'}")
            eta = run.progress.get("eta_s")
            top[2].markdown(
                f"Check {history[-1]['epoch']} on validation · ETA {fmt_seconds(eta)}"
                if history
                else "&nbsp;"
            )
            if run.status in ("queued", "running") and top[3].button(
                "Cancel", key=f"cancel_{run.id}"
            ):
                with user_errors():
                    request_cancel(run.id, actor=actor)
            if run.status == "running" and history:
                budget_s = run.time_budget_s or 1
                st.progress(min(1.0, history[-1]["elapsed_s"] / budget_s), text="time budget used")
            if history:
                frame = pd.DataFrame(history)
                if "trial" not in frame:  # runs recorded before trials were
                    frame["trial"] = 0
                long = frame.melt(
                    id_vars=["epoch", "trial"],
                    value_vars=["train_loss", "val_loss", "val_metric"],
                    var_name="series",
                )
                trials = int(frame["trial"].nunique())
                if trials > 1:
                    st.caption(
                        f"Tuning: {trials} trials so far, one after the other; each line "
                        "breaks where a new trial starts (trial 1 is the defaults)."
                    )
                st.plotly_chart(
                    px.line(
                        long,
                        x="epoch",
                        y="value",
                        color="series",
                        line_group="trial",
                        height=240,
                        markers=True,
                        # a point per validation check: about one an epoch, more often on
                        # large data (models/training_loop.py)
                        labels={"epoch": "validation check"},
                    ),
                    width="stretch",
                    key=f"hist_{run.id}_{len(history)}",
                )
            if run.status == "failed":
                st.error(run.error or "The run failed.")
            elif run.status == "succeeded":
                name, value, interval = run.headline
                if value is not None:
                    st.success(
                        f"{name} {value:.3f} (95% CI {interval[0]:.3f}–{interval[1]:.3f}) in "
                        f"{fmt_seconds(run.train_seconds)}"
                    )
    if not active:
        st.page_link(
            "pages/runs.py", label="Compare on the leaderboard", icon=":material/leaderboard:"
        )


live_panel()

suggestion = suggest_text_stack(dataset_id)
if suggestion is not None:
    st.info(suggestion.message, icon=":material/stacks:")
    if st.button("Train the stack", disabled=not actor.may("train"), key="text_stack_start"):
        with user_errors():
            launch_worker_for([queue_suggested_stack(suggestion, actor=actor)])
            st.toast("Stack queued.")

finished = [
    r
    for r in list_runs(dataset_id)
    if r.status == "succeeded"
    and r.task == "binary"
    and not registry.get_kind(r.model).combines_runs
    and r.train_fraction == 1.0
]
with st.expander("Ensemble of finished runs"):
    if len(finished) < 2:
        st.caption("Needs two finished binary runs on this dataset (same target and seed).")
    else:
        chosen = st.multiselect(
            "Members",
            [r.id for r in finished],
            format_func=lambda i: next(r.label for r in finished if r.id == i),
            default=[r.id for r in finished][:2],
            key="ens_members",
        )
        rule = st.radio(
            "Combine by",
            ["mean", "stack"],
            horizontal=True,
            key="ens_rule",
            format_func=lambda r: {
                "mean": "mean of probabilities",
                "stack": "stack on log-odds (fitted on the validation part)",
            }[r],
        )
        if st.button(
            "Train ensemble", disabled=len(chosen) < 2 or not actor.may("train"), key="ens_start"
        ):
            with user_errors():
                first = next(r for r in finished if r.id == chosen[0])
                launch_worker_for(
                    [
                        create_run(
                            dataset_id,
                            registry.combiner().name,
                            target=first.target,
                            seed=first.seed,
                            members=chosen,
                            rule=rule,
                            actor=actor,
                        )
                    ]
                )
                st.toast("Ensemble queued.")
st.caption(f"Available models: {', '.join(k.label for k in registry.all_kinds())}.")
