"""Forms: every input from a browser (HTTP or WebSocket) is validated here before it acts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from broker.scenario import ScenarioError, ScenarioSpec, load_text
from dashboard.live.limits import setting
from dashboard.live.runtime import Control, Room
from dashboard.panels.common import BEAT, BEATS
from dashboard.panels.experiments import EXPERIMENT_FIELDS, ExperimentError, experiment_command
from dashboard.panels.faults import client_fault_refusal
from dashboard.panels.presenters import SPEEDS

# The fields a control may carry (an HTTP POST or a WebSocket message); ControlForm checks them.
CONTROL_FIELDS = ("action", "speed", "position", "fault", "beats", "on", *EXPERIMENT_FIELDS)
ACTIONS = (
    *("play", "pause", "step", "back", "seek", "speed", "reset", "fault", "anomaly-pause"),
    "experiment",  # the experiments panel: send more, start a consumer, configure
)


class ControlForm(forms.Form):
    """A playback control or a fault button, for one room.

    A speed button posts only ``speed``; the action is then "speed". A beat-rate button posts
    only ``beats`` (moments per second): the speed is then "beat" (event pacing). The pause on
    anomaly toggle posts only ``on`` ("on" or "off"); the action is then "anomaly-pause".
    """

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS], required=False)
    speed = forms.ChoiceField(choices=[(s, s) for s in (*SPEEDS, BEAT)], required=False)
    beats = forms.ChoiceField(
        choices=[(b, b) for b in BEATS],
        required=False,
        error_messages={
            "invalid_choice": "Event pacing plays %(value)s moments a second? It plays "
            + ", ".join(BEATS)
            + " moments a second."
        },
    )
    on = forms.ChoiceField(choices=[("on", "on"), ("off", "off")], required=False)
    position = forms.IntegerField(min_value=0, max_value=10_000_000, required=False)
    fault = forms.CharField(max_length=120, required=False)

    def __init__(self, *args: Any, room: Room, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.room = room

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action") or ""
        if not action and (data.get("speed") or data.get("beats")):
            action = "speed"
        elif not action and data.get("on"):
            action = "anomaly-pause"  # the toggle button posts only ``on``
        if not action:
            raise forms.ValidationError("Which control? (action is missing)")
        data["action"] = action
        if action == "speed" and data.get("beats") and not data.get("speed"):
            data["speed"] = BEAT
        if data.get("beats") and data.get("speed") != BEAT:
            self.add_error("beats", 'A beat rate goes with event pacing (speed "beat").')
        if action == "anomaly-pause" and not data.get("on") and "on" not in self.errors:
            self.add_error("on", "Pause on anomaly: on or off?")
        if action == "speed" and not data.get("speed"):
            self.add_error("speed", "Pick a speed.")
        if action == "seek" and data.get("position") is None and "position" not in self.errors:
            self.add_error(
                "position",
                f"Seek needs a position: an event number from 0 to {self.room.timeline.length}.",
            )
        if action == "fault":
            fault = data.get("fault")
            options = {o.id: o for o in self.room.fault_options()}
            option = options.get(fault or "")
            if not fault:
                example = f", such as {next(iter(options))!r}" if options else ""
                self.add_error(
                    "fault", f"Which fault? Name one of this scenario's faults{example}."
                )
            elif option is None:
                wire = self.room.wire
                refusal = client_fault_refusal(fault, wire.clients() if wire is not None else None)
                self.add_error("fault", refusal or f"This scenario has no fault {fault!r}.")
            elif not option.available:
                self.add_error("fault", f"Not now: {option.why_not}.")
        if action == "experiment":
            try:
                data["command"], data["label"] = experiment_command(self.data, self.room.timeline)
            except ExperimentError as exc:
                self.add_error(None, str(exc))
        return data

    def control(self) -> Control:
        data = self.cleaned_data
        return Control(
            action=data["action"],
            speed=data.get("speed") or None,
            position=data.get("position"),
            fault=data.get("fault") or None,
            beats=data.get("beats") or None,
            on=None if not data.get("on") else data["on"] == "on",
            command=data.get("command"),
            label=data.get("label", ""),
        )

    def error_text(self) -> str:
        messages = [str(m) for errors in self.errors.values() for m in errors]
        return " ".join(messages) or "That control is not valid."


class ScenarioUploadForm(forms.Form):
    scenario = forms.FileField(label="Scenario file (.toml)")
    text = ""  # the file's text, once clean_scenario read it (a room's saved run keeps it)

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
        self.text = text
        try:
            return load_text(text, name, source=upload.name or "")
        except ScenarioError as exc:
            self.scenario_error = exc
            where = f"{exc.path}: " if exc.path else ""
            raise forms.ValidationError(f"{where}{exc.problem}") from None


PRESET_CHOICES = ("lost", "duplicated", "exactly once")
MAX_CHOICES = 6


class AskForm(forms.Form):
    """Predict, then reveal: a question with 2 to 6 choices (presets and custom ones)."""

    prompt = forms.CharField(max_length=200, initial="What happens next?")
    presets = forms.MultipleChoiceField(
        choices=[(c, c) for c in PRESET_CHOICES],
        required=False,
        initial=list(PRESET_CHOICES),
        widget=forms.CheckboxSelectMultiple,
    )
    custom = forms.CharField(
        max_length=6 * 61,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="More choices, one per line (at most 60 characters each).",
    )
    correct = forms.CharField(
        max_length=60,
        required=False,
        label="The right answer (optional)",
        help_text="One of the choices, as written; the reveal marks it for everyone.",
        widget=forms.TextInput(attrs={"list": "ask-choices", "autocomplete": "off"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        custom = [line.strip() for line in (data.get("custom") or "").splitlines()]
        custom = [line for line in custom if line]
        for line in custom:
            if len(line) > 60:
                self.add_error("custom", f"A choice may be at most 60 characters: {line[:20]}…")
        choices = list(dict.fromkeys([*(data.get("presets") or []), *custom]))
        if not 2 <= len(choices) <= MAX_CHOICES:
            raise forms.ValidationError(
                f"A question needs 2 to {MAX_CHOICES} different choices; this one has "
                f"{len(choices)}."
            )
        data["choice_list"] = choices
        correct = (data.get("correct") or "").strip()
        data["correct_index"] = None
        if correct:
            folded = [c.casefold() for c in choices]
            if correct.casefold() not in folded:
                self.add_error(
                    "correct",
                    f"The right answer {correct!r} is not one of the choices "
                    f"({', '.join(choices)}).",
                )
            else:
                data["correct_index"] = folded.index(correct.casefold())
        return data

    def choices(self) -> list[str]:
        return list(self.cleaned_data["choice_list"])

    def correct_index(self) -> int | None:
        index = self.cleaned_data.get("correct_index")
        return None if index is None else int(index)

    def error_text(self) -> str:
        messages = [str(m) for errors in self.errors.values() for m in errors]
        return " ".join(messages) or "That question is not valid."
