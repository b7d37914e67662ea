"""One summary of the app's state for the sidebar and the home page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.db import session_factory
from core.jobs import ACTIVE_STATUSES
from core.records import DatasetRecord, TrainingRunRecord
from core.settings import load_settings


@dataclass(frozen=True)
class AppStatus:
    device: str
    n_datasets: int
    n_runs: int
    n_active: int
    db_label: str


def app_status() -> AppStatus:
    import torch

    settings = load_settings()
    if settings.device == "cpu" or not torch.cuda.is_available():
        device = "CPU" + (" (no GPU found)" if settings.device != "cpu" else "")
    else:
        device = f"CUDA · {torch.cuda.get_device_name(0)}"
    with session_factory().begin() as session:
        n_datasets = session.scalar(select(func.count()).select_from(DatasetRecord)) or 0
        n_runs = session.scalar(select(func.count()).select_from(TrainingRunRecord)) or 0
        n_active = (
            session.scalar(
                select(func.count()).where(TrainingRunRecord.status.in_(ACTIVE_STATUSES))
            )
            or 0
        )
    url = settings.db_url
    label = url.split("///", 1)[-1] if url.startswith("sqlite") else url.split("@")[-1]
    return AppStatus(device, n_datasets, n_runs, n_active, label)
