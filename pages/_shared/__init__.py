"""UI helpers shared by the pages: cached resources, session-state keys, widgets."""
