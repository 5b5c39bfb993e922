"""Forms: every input from a browser (HTTP or WebSocket) is validated here before it acts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from broker.scenario import ScenarioError, ScenarioSpec, load_text
from dashboard.presenters import SPEEDS
from dashboard.runtime import Control, Room, setting

ACTIONS = ("play", "pause", "step", "back", "seek", "speed", "reset", "fault")


class ControlForm(forms.Form):
    """A playback control or a fault button, for one room.

    A speed button posts only ``speed``; the action is then "speed".
    """

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS], required=False)
    speed = forms.ChoiceField(choices=[(s, s) for s in SPEEDS], required=False)
    position = forms.IntegerField(min_value=0, max_value=10_000_000, required=False)
    fault = forms.CharField(max_length=120, required=False)

    def __init__(self, *args: Any, room: Room, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.room = room

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action") or ("speed" if data.get("speed") else "")
        if not action:
            raise forms.ValidationError("Which control? (action is missing)")
        data["action"] = action
        if action == "speed" and not data.get("speed"):
            self.add_error("speed", "Pick a speed.")
        if action == "seek" and data.get("position") is None:
            self.add_error("position", "Seek where? (position is missing)")
        if action == "fault":
            fault = data.get("fault")
            options = {o.id: o for o in self.room.fault_options()}
            option = options.get(fault or "")
            if option is None:
                self.add_error("fault", f"This scenario has no fault {fault!r}.")
            elif not option.available:
                self.add_error("fault", f"Not now: {option.why_not}.")
        return data

    def control(self) -> Control:
        data = self.cleaned_data
        return Control(
            action=data["action"],
            speed=data.get("speed") or None,
            position=data.get("position"),
            fault=data.get("fault") or None,
        )

    def error_text(self) -> str:
        messages = [str(m) for errors in self.errors.values() for m in errors]
        return " ".join(messages) or "That control is not valid."


class ScenarioUploadForm(forms.Form):
    scenario = forms.FileField(label="Scenario file (.toml)")

    def clean_scenario(self) -> ScenarioSpec:
        upload: UploadedFile = self.cleaned_data["scenario"]
        limit = setting("LAB_MAX_UPLOAD_BYTES", 64 * 1024)
        if upload.size is not None and upload.size > limit:
            raise forms.ValidationError(
                f"{upload.name} is {upload.size:,} bytes; scenario files may be at most "
                f"{limit:,} bytes ({limit // 1024} KiB)."
            )
        raw = upload.read(limit + 1)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError(f"{upload.name} is not UTF-8 text.") from None
        stem = (upload.name or "uploaded").rsplit("/", 1)[-1].removesuffix(".toml") or "uploaded"
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem)[:64] or "uploaded"
        try:
            return load_text(text, name, source=upload.name or "")
        except ScenarioError as exc:
            self.scenario_error = exc
            where = f"{exc.path}: " if exc.path else ""
            raise forms.ValidationError(f"{where}{exc.problem}") from None
