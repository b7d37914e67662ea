"""The only st.cache_* wrappers in Payoff. Everything below calls plain ``core`` functions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import datasets, runs
from core.ingest import IngestResult, read_csv_bytes
from core.settings import load_settings
from core.startup import start


@st.cache_resource(show_spinner=False)
def _started(db_url: str) -> bool:
    start()
    datasets.ensure_samples()
    return True


def ensure_started() -> None:
    """Migrate the ledger, mark dead runs interrupted and register the samples, once."""
    _started(load_settings().db_url)


@st.cache_data(show_spinner="Reading the dataset...", max_entries=8)
def dataset_frame(dataset_id: int, sha256: str) -> pd.DataFrame:
    # sha256 is part of the key so a re-registered file can never serve a stale frame.
    return datasets.load_frame(dataset_id)


@st.cache_data(show_spinner="Reading the file...", max_entries=4)
def parse_upload(data: bytes, name: str) -> IngestResult:
    return read_csv_bytes(data, limits=load_settings().limits, name=name)


@st.cache_resource(show_spinner="Loading the model...", max_entries=4)
def run_model(run_id: int, artifact_path: str):
    # The artifact path is in the key: a deleted and re-created run id reloads.
    return runs.load_run_model(run_id)


@st.cache_data(show_spinner="Scoring the labelled rows...", max_entries=4)
def labelled_rows(run_id: int, artifact_path: str, data: bytes | None, name: str):
    # The artifact path is in the key (a re-created run id rescoring); None = the test part.
    from core.fairness import labelled_rows as rows_of

    return rows_of(run_id, data, source_name=name, model=run_model(run_id, artifact_path))


@st.cache_data(show_spinner="Reading the validation rows...", max_entries=4)
def validation_rows(run_id: int, artifact_path: str):
    from core.fairness import validation_rows as rows_of

    return rows_of(run_id)


@st.cache_data(show_spinner="Comparing on the same rows...", max_entries=16)
def leaderboard_comparison(dataset_id: int, target: str, runs_key: tuple):
    # runs_key: (id, status, artifact path) of the dataset's runs, so a new, finished or
    # deleted run recomputes; a slider move on the Runs page does not.
    from core.comparison import leaderboard_comparison as compare

    return compare(dataset_id, target)
