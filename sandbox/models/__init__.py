"""The Sandbox's rows: runs and saved prompts (runs.py), and evaluation: datasets,
experiments and their results (evaluation.py)."""

from sandbox.models.evaluation import (  # noqa: F401
    Dataset,
    DatasetVersion,
    Experiment,
    ExperimentResult,
    ExperimentStatus,
    PromptLabel,
    PromptVersion,
    Review,
)
from sandbox.models.runs import RunStatus, SandboxRun, SavedPrompt  # noqa: F401
