"""Evaluation: datasets (immutable versions of rows), experiments (a dataset version, a
prompt, 1 to 8 models or routes, scorers) and one result per row and model."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

MAX_MODELS = 8


class Dataset(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="datasets"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def latest(self) -> DatasetVersion | None:
        return self.versions.order_by("-number").first()


class DatasetVersion(models.Model):
    """The rows as they were at one save: never changed, so an experiment that ran on a
    version can always be read against the rows it ran on. Each row is
    {"variables": {name: text}, "expected": text, "metadata": {...}}."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    message = models.CharField(max_length=200, blank=True)
    rows = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "number"], name="dataset_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset.name} v{self.number}"


class PromptVersion(models.Model):
    """A saved prompt as it was at one save: numbered, with a message, never changed.
    The saved prompt itself holds the latest; its versions hold every one before."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    prompt = models.ForeignKey(
        "sandbox.SavedPrompt", on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    message = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    turns = models.JSONField(default=list, blank=True)
    user_prompt = models.TextField(blank=True)
    variables = models.JSONField(default=dict, blank=True)
    columns = models.JSONField(default=list, blank=True)  # models and their parameters
    options = models.JSONField(default=dict, blank=True)  # tools, tool choice, response format
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "number"], name="prompt_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.number}"


class PromptLabel(models.Model):
    """A name such as production or staging, on one version of a prompt at a time."""

    prompt = models.ForeignKey(
        "sandbox.SavedPrompt", on_delete=models.CASCADE, related_name="labels"
    )
    name = models.CharField(max_length=40)
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="labels")
    moved_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "name"], name="prompt_label_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} → v{self.version.number}"


class ExperimentStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"
    STOPPED = "stopped", "Stopped at its budget"
    FAILED = "failed", "Failed"


class Experiment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="experiments"
    )
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="experiments"
    )
    # The prompt as it ran (a copy: the version may be deleted with its prompt).
    system_prompt = models.TextField(blank=True)
    user_prompt = models.TextField()  # with {{variables}} from the rows
    parameters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)  # tools, tool choice, response format
    # Each: {"model": id} or {"route": id}, with "name" kept for display.
    targets = models.JSONField(default=list)
    scorers = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveSmallIntegerField(default=4)  # calls at once, per target
    budget = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    estimate = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    status = models.CharField(
        max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.QUEUED
    )
    spent = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # a worker is on it
    task_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def total(self) -> int:
        return len(self.dataset_version.rows) * len(self.targets)


class ExperimentResult(models.Model):
    """One row × one target, written once when it is finished: a worker that resumes an
    experiment sends every row without one, and never a row that has one."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    row = models.PositiveIntegerField()
    target = models.PositiveSmallIntegerField()  # its index in experiment.targets
    status = models.CharField(max_length=10, default="ok")  # ok | failed
    output = models.TextField(blank=True)
    scores = models.JSONField(default=list, blank=True)  # [Score.as_dict()]
    passed = models.BooleanField(null=True)
    score = models.FloatField(null=True, blank=True)  # the mean of its scores' values
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    judge_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    model_name = models.CharField(max_length=200, blank=True)  # the model that answered
    error_kind = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    worker = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["row", "target"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "row", "target"], name="experiment_result_unique"
            )
        ]

    def __str__(self) -> str:
        return f"row {self.row} × target {self.target}: {self.status}"


class Review(models.Model):
    """A person's blind pick between two targets' outputs for one row (a tie: no winner)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="reviews")
    row = models.PositiveIntegerField()
    left = models.PositiveSmallIntegerField()  # target indexes, in the order shown
    right = models.PositiveSmallIntegerField()
    winner = models.PositiveSmallIntegerField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "row", "left", "right", "reviewer"], name="review_unique"
            )
        ]

    def __str__(self) -> str:
        return f"row {self.row}: {self.left} vs {self.right} → {self.winner}"
