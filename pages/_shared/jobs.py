"""The live panel of a background job (score, explain): progress, cancel, and the hand-over of
its result to the page once it is done. The work itself runs in a worker process; closing the
tab stops nothing, and coming back to the page picks the job up again."""

from __future__ import annotations

import streamlit as st

from core.jobs import JobInfo, cancel_job, ensure_worker, get_job, list_jobs, reap_dead_jobs
from pages._shared.auth import current_actor
from pages._shared.widgets import fmt_seconds, user_errors

POLL_S = 1.0


def pending_job(state_key: str, kind: str, run_id: int, title: str) -> JobInfo | None:
    """Watch the job this session started (or an active one of ``kind`` for ``run_id`` after a
    reload). While it runs, show the live panel and return None; once it has ended, return it
    (once) so the page can show its result or its error."""
    job_id = st.session_state.get(state_key)
    if job_id is None:
        active = list_jobs(kind, run_id=run_id, active=True, limit=1)
        if not active:
            return None
        job_id = st.session_state[state_key] = active[0].id
    try:
        job = get_job(job_id)
    except ValueError:
        st.session_state.pop(state_key, None)
        return None
    if job.run_id != run_id:
        return None  # another model's job: picked up again on that model's view
    if job.active:
        _live_panel(job_id, title)
        return None
    st.session_state.pop(state_key, None)
    return job


def show_outcome(job: JobInfo, what: str) -> None:
    """The end of a job that did not succeed, in one message."""
    if job.status == "failed":
        st.error(f"{what}: {job.error}")
    elif job.status == "cancelled":
        st.info(f"{what} was cancelled; nothing was kept.")
    elif job.status == "interrupted":
        st.warning(f"{what} was interrupted: {job.error}")


def _fraction(progress: dict) -> tuple[float, str]:
    done = progress.get("rows", progress.get("done"))
    total = progress.get("total")
    if done is None:
        return 0.0, ""
    if total:
        return min(1.0, done / max(total, 1)), f"{done:,} of ~{total:,} rows"
    return 0.0, f"{done:,} rows"


@st.fragment(run_every=POLL_S)
def _live_panel(job_id: int, title: str) -> None:
    reap_dead_jobs()  # a worker that died is noticed here too, not only by other workers
    job = get_job(job_id)
    if not job.active:
        st.rerun()  # the whole page, which now shows the result
    if job.status == "queued":
        ensure_worker()  # zero set-up: a local worker when none runs (PAYOFF_LOCAL_WORKER)
    with st.container(border=True):
        top = st.columns([4, 1])
        stage = job.progress.get("stage", job.status)
        where = f" on {job.worker}" if job.worker else ""
        source = job.params.get("source_name")
        label = f"{title} {source}" if source else title
        top[0].markdown(f"**{label}** · job #{job.id} · {job.status}{where} · {stage}")
        if top[1].button("Cancel", key=f"cancel_job_{job.id}", disabled=job.cancel_requested):
            with user_errors():
                cancel_job(job.id, actor=current_actor())
        fraction, text = _fraction(job.progress)
        st.progress(fraction, text=text or "waiting for a worker...")
        if job.started_at is not None and job.heartbeat_at is not None:
            elapsed = (job.heartbeat_at - job.started_at).total_seconds()
            st.caption(
                f"Running for about {fmt_seconds(max(elapsed, 0.0))}. Leaving the page does "
                "not stop it; the result appears here when it is done."
            )
