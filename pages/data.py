"""Data: upload or pick a dataset -> preview -> profile -> confirm roles -> use case -> save."""

from __future__ import annotations

import hashlib

import pandas as pd
import plotly.express as px
import streamlit as st

from core.datasets import (
    DatasetInUseError,
    Roles,
    check_target,
    delete_dataset,
    list_datasets,
    positive_class_choices,
    register_dataset,
    set_roles,
)
from core.ingest import DatasetSchema
from core.usecases import USE_CASES
from pages._shared import state
from pages._shared.auth import current_actor
from pages._shared.frame import use_app_navigation
from pages._shared.pickers import pick_dataset
from pages._shared.resources import dataset_frame, parse_upload
from pages._shared.widgets import user_errors

ROLE_CHOICES = ["feature", "target", "money column", "id", "ignore"]

use_app_navigation()

st.title("Data")
st.caption(
    "Everything stays on this machine. Columns that look like personal data (emails, phone "
    "numbers, card or national-id numbers, names, addresses) are left out of the features "
    "unless you put them back."
)


def _role_table(schema: DatasetSchema, roles: Roles) -> pd.DataFrame:
    def role_of(name: str) -> str:
        if name == roles.target:
            return "target"
        if name == roles.money_column:
            return "money column"
        if name == roles.id_column:
            return "id"
        if name in roles.features:
            return "feature"
        return "ignore"

    return pd.DataFrame(
        {
            "column": [c.name for c in schema.columns],
            "role": [role_of(c.name) for c in schema.columns],
            "kind": [c.kind for c in schema.columns],
            "why": [c.reason for c in schema.columns],
            "missing %": [round(100 * c.missing_share, 1) for c in schema.columns],
            "distinct": [c.n_unique for c in schema.columns],
            "PII": [c.pii or "" for c in schema.columns],
            "examples": [", ".join(c.example_values) for c in schema.columns],
        }
    )


def _roles_from_table(table: pd.DataFrame, positive: str | None) -> Roles:
    def single(role: str) -> str | None:
        chosen = table.loc[table["role"] == role, "column"].tolist()
        if len(chosen) > 1:
            raise ValueError(f"Choose one {role}; these columns all have it: {', '.join(chosen)}.")
        return chosen[0] if chosen else None

    return Roles(
        target=single("target"),
        positive_class=positive,
        features=tuple(table.loc[table["role"] == "feature", "column"]),
        money_column=single("money column"),
        id_column=single("id"),
        ignored=tuple(table.loc[table["role"] == "ignore", "column"]),
    )


def _profile(frame: pd.DataFrame, schema: DatasetSchema, target: str | None) -> None:
    st.subheader("Profile")
    left, right = st.columns(2)
    missing = pd.DataFrame(
        {
            "column": [c.name for c in schema.columns],
            "missing %": [100 * c.missing_share for c in schema.columns],
        }
    )
    left.plotly_chart(
        px.bar(missing, x="column", y="missing %", title="Missing values per column", height=320),
        width="stretch",
    )
    if target and target in frame.columns:
        balance = frame[target].astype("string").fillna("(missing)").value_counts().reset_index()
        balance.columns = ["value", "rows"]
        right.plotly_chart(
            px.bar(
                balance.head(30), x="value", y="rows", title=f"Target balance: {target}", height=320
            ),
            width="stretch",
        )
    plottable = [c.name for c in schema.columns if c.kind in ("numeric", "categorical")]
    if plottable:
        column = st.selectbox("Distribution of", plottable, key="profile_column")
        kind = schema.column(column).kind
        if kind == "numeric":
            figure = px.histogram(frame, x=column, nbins=40, height=320)
        else:
            counts = (
                frame[column]
                .astype("string")
                .fillna("(missing)")
                .value_counts()
                .head(30)
                .reset_index()
            )
            counts.columns = [column, "rows"]
            figure = px.bar(counts, x=column, y="rows", height=320)
        st.plotly_chart(figure, width="stretch")
    flagged = [c for c in schema.columns if c.pii]
    if flagged:
        st.warning(
            "Possible personal data, left out of the features by default: "
            + "; ".join(f"**{c.name}** ({c.pii})" for c in flagged)
        )
    for warning in schema.warnings:
        st.info(warning)


def _roles_form(
    frame: pd.DataFrame, schema: DatasetSchema, roles: Roles, use_case: str | None, key: str
):
    """Shows the role editor and returns (roles, use_case) or raises ValueError."""
    st.subheader("Roles")
    if schema.suggested_target:
        st.caption(
            f"Suggested target: **{schema.suggested_target}**: {schema.suggested_target_reason}"
        )
    else:
        st.info(schema.suggested_target_reason)
    table = st.data_editor(
        _role_table(schema, roles),
        column_config={
            "role": st.column_config.SelectboxColumn("role", options=ROLE_CHOICES, required=True),
        },
        disabled=["column", "kind", "why", "missing %", "distinct", "PII", "examples"],
        hide_index=True,
        width="stretch",
        key=f"roles_{key}",
    )
    targets = table.loc[table["role"] == "target", "column"].tolist()
    positive = None
    if len(targets) == 1:
        with user_errors():  # said now; saving refuses it too
            check_target(schema, targets[0])
        values, default = positive_class_choices(frame[targets[0]], roles.positive_class)
        if values:
            positive = st.selectbox(
                "Positive class (the event to flag: default, fraud, churn, ...)",
                values,
                index=values.index(default),
                key=f"positive_{key}",
            )
    keys = list(USE_CASES)
    use_case = st.selectbox(
        "Use case",
        keys,
        index=keys.index(use_case) if use_case in keys else 0,
        format_func=lambda k: USE_CASES[k].title,
        key=f"usecase_{key}",
    )
    return table, positive, use_case


actor = current_actor()
source = st.radio(
    "Data source",
    ["A dataset in Payoff (samples included)", "Upload a new CSV"]
    if actor.may("upload")
    else ["A dataset in Payoff (samples included)"],
    horizontal=True,
    key="data_source",
)

if source == "Upload a new CSV":
    upload = st.file_uploader("CSV file", type=["csv", "txt", "tsv"], key="uploader")
    if upload is None:
        st.info(
            "Choose a CSV file: comma, semicolon, tab or pipe separated; UTF-8 or Windows encodings."
        )
        st.stop()
    data = upload.getvalue()
    parsed = None
    with user_errors(f"{upload.name}: "):
        parsed = parse_upload(data, upload.name)
    if parsed is None:
        st.stop()
    schema = parsed.schema
    st.success(
        f"Read **{schema.n_rows:,} rows × {len(schema.columns)} columns** "
        f"({schema.encoding}, delimiter {schema.delimiter!r})."
    )
    st.dataframe(parsed.frame.head(50), width="stretch")
    _profile(parsed.frame, schema, schema.suggested_target)
    default_roles = Roles(
        target=schema.suggested_target,
        features=tuple(c for c in schema.default_features() if c != schema.suggested_target),
    )
    key = hashlib.sha256(data).hexdigest()[:12]
    table, positive, use_case = _roles_form(parsed.frame, schema, default_roles, None, key)
    name = st.text_input("Name", value=upload.name.rsplit(".", 1)[0][:200], key=f"name_{key}")
    if st.button("Save dataset", type="primary", key=f"save_{key}"):
        with user_errors():
            roles = _roles_from_table(table, positive)
            info = register_dataset(
                data, name, roles=roles, use_case=use_case, suggest_target=False, actor=actor
            )
            info = set_roles(info.id, roles, use_case, actor=actor)
            st.session_state[state.DATASET_ID] = info.id
            st.success(f"Saved dataset #{info.id} **{info.name}**. Next: train a model.")
            st.page_link("pages/train.py", label="Train", icon=":material/arrow_forward:")
    st.stop()

datasets = list_datasets()
if not datasets:
    st.info("No datasets yet: upload a CSV above.")
    st.stop()
info = pick_dataset(
    datasets,
    key="data_dataset",
    empty_message="No datasets yet: upload a CSV above.",
    describe=lambda d: f"#{d.id} {d.name} ({d.n_rows:,} rows)",
)
frame = None
with user_errors():
    frame = dataset_frame(info.id, info.sha256)
if frame is None:
    st.stop()
st.dataframe(frame.head(50), width="stretch")
_profile(frame, info.schema, info.roles.target)
table, positive, use_case = _roles_form(
    frame, info.schema, info.roles, info.use_case, f"ds{info.id}"
)
save, delete = st.columns([1, 1])
if actor.may("edit") and save.button("Save roles and use case", type="primary"):
    with user_errors():
        set_roles(info.id, _roles_from_table(table, positive), use_case, actor=actor)
        st.success("Saved.")
if actor.may("delete"):
    with delete.popover("Delete this dataset"):
        st.write(
            "Erases the stored file and the dataset's rows; the audit trail keeps only that it "
            "was deleted."
        )
        cascade = st.checkbox(
            f"Also erase its {info.n_runs} run(s) with their scores, explanations, scenarios, "
            "model files and stored exports",
            disabled=info.n_runs == 0,
        )
        if st.button("Delete", type="secondary"):
            try:
                delete_dataset(info.id, cascade=cascade, actor=actor)
                st.session_state.pop(state.DATASET_ID, None)
                st.rerun()
            except (DatasetInUseError, ValueError, PermissionError) as exc:
                st.error(str(exc))
