"""What the lab keeps in its database: rooms (who may do what), saved runs, questions and votes.

A room's *live* state (the engine, its checkpoints) lives in a runtime process, in memory. The
database holds what survives a restart and what several processes must agree on: a room's join
code and hashed presenter key, its idle expiry, the run it shows (scenario text, seed and the
commands pressed, enough to replay it exactly), and predict-then-reveal questions with one vote
per attendee.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db import models
from django.utils import timezone

# Join codes are read aloud: no 0/O, 1/I/L, 5/S, 2/Z, 8/B look-alikes. Eight of 25 symbols
# (1.5 * 10^11 codes) make guessing hopeless at the rate failed lookups are allowed (the
# arithmetic is in docs/workshops.md); typed in any case, with or without spaces or dashes.
CODE_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 8


def new_code(length: int = CODE_LENGTH) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(code: str) -> str:
    """What a person typed (any case, spaces or dashes) as a stored join code."""
    return "".join(c for c in code.upper() if c.isalnum())


def new_key() -> str:
    """A presenter key: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def hash_key(key: str) -> str:
    """Presenter keys are random 128-bit tokens, so one SHA-256 is enough (no stretching)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, stored_hash: str) -> bool:
    """Compare in constant time (hmac.compare_digest), whatever the key's length or content."""
    return hmac.compare_digest(hash_key(key).encode("ascii"), stored_hash.encode("ascii"))


class SavedRun(models.Model):
    """One run: the scenario (its TOML text), the seed and the commands pressed, with the
    engine step and virtual time of each. Replaying these gives the same trace and verdict."""

    id = models.CharField(primary_key=True, max_length=16)
    title = models.CharField(max_length=200)
    scenario_name = models.CharField(max_length=64)
    scenario_toml = models.TextField()
    seed = models.BigIntegerField()
    # [{"step_index": int, "time_ms": int, "raw": {...}, "label": str}, ...]
    commands = models.JSONField(default=list)
    # The verdict when last saved: {"label": ..., "lost": n, "duplicated": n, ...} or {}.
    verdict = models.JSONField(default=dict)
    # The questions asked in its room, with their results (they outlive the room):
    # [{"id", "prompt", "choices", "correct", "tally", "position", "asked_at", "revealed"}, ...]
    questions = models.JSONField(default=list)
    # Where it came from: room, sandbox, preview, import or replay.
    origin = models.CharField(max_length=16, default="room")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.title} (seed {self.seed}, {len(self.commands)} commands)"

    @staticmethod
    def new_id() -> str:
        return secrets.token_hex(6)


class LabRoom(models.Model):
    """A room: a live run that browsers watch. ``kind``:

    - workshop: made by an instructor; attendees join with the code, presenters with the key;
    - sandbox: an attendee's private fork ("Try it yourself"), full controls for its owner only;
    - view: an attendee's private copy of the history ("detach"), time travel only.
    """

    KINDS = ("workshop", "sandbox", "view")

    id = models.CharField(primary_key=True, max_length=16)
    code = models.CharField(max_length=8, unique=True, null=True, blank=True)
    presenter_key_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, default="workshop")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks"
    )
    run = models.ForeignKey(SavedRun, on_delete=models.PROTECT, related_name="rooms")
    # A fork starts where its parent was: the engine step count to seek to on load.
    start_steps = models.BigIntegerField(default=0)
    # A view may not run past what the parent had recorded when it was made.
    limit_steps = models.BigIntegerField(null=True, blank=True)
    idle_expiry_s = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    last_active = models.DateTimeField(default=timezone.now)
    # Who opened it: a hash of the client's address (rooms.creator_of), never the address
    # itself. Each address may hold only a few workshop rooms in use at once.
    creator = models.CharField(max_length=64, blank=True, default="")
    # Whether its presenters get the speaker notes: not in an attendee's copy of a workshop room
    # (the notes tell the expected outcome).
    notes = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.kind} room {self.id} ({self.code or 'private'})"

    @property
    def expires_at(self) -> Any:
        return self.last_active + timedelta(seconds=self.idle_expiry_s)

    def expired(self, now: Any = None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class Question(models.Model):
    """A predict-then-reveal question, asked at one moment of a room's run."""

    room = models.ForeignKey(LabRoom, on_delete=models.CASCADE, related_name="questions")
    prompt = models.CharField(max_length=200)
    choices = models.JSONField()  # ["lost", "duplicated", "exactly once", ...]
    correct = models.PositiveSmallIntegerField(null=True, blank=True)  # the right choice's index
    position = models.BigIntegerField()  # the scrubber position when it was asked
    asked_at = models.DateTimeField(default=timezone.now)
    revealed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["asked_at", "id"]

    def __str__(self) -> str:
        return self.prompt


class Vote(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="votes")
    voter = models.CharField(max_length=64)  # the attendee's browser session token
    choice = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["question", "voter"], name="one_vote_per_attendee")
        ]

    def __str__(self) -> str:
        return f"{self.voter} → {self.choice}"
