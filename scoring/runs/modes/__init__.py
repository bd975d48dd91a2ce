"""The judging modes of scoring runs, one class per ``Run.Mode`` (``base.JudgingMode``), and
the run's unit of work (``base.Unit``); ``registry.mode_for`` gives a run's mode."""
