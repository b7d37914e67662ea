"""Session-state keys shared between pages (plain values only: the session state must
serialise, see runner.enforceSerializableSessionState in .streamlit/config.toml)."""

DATASET_ID = "payoff.dataset_id"
RUN_ID = "payoff.run_id"
SCORE_BATCH_ID = "payoff.score_batch_id"
EXPLANATION_ID = "payoff.explanation_id"
