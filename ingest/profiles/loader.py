"""Load ``device_profiles/*.yaml``, validate them strictly and compile them for matching."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ingest.decoders import DECODERS, DeclineFn, DecodeFn
from ingest.profiles.schema import Profile
from ingest.profiles.topics import TopicTemplate
from ingest.validation import describe_errors


class ProfileError(Exception):
    """Profiles that cannot be used; the message names the file, key path and value."""


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    profile: Profile
    options: BaseModel
    templates: tuple[TopicTemplate, ...]
    decode: DecodeFn
    declines: DeclineFn | None = None

    @property
    def id(self) -> str:
        return self.profile.id


class ProfileSet:
    """The loaded profiles. A topic's candidates are the matching profiles, highest priority first."""

    def __init__(self, profiles: list[CompiledProfile]) -> None:
        self.profiles = sorted(profiles, key=lambda p: -p.profile.priority)  # stable: file order next
        self.by_id = {p.id: p for p in self.profiles}
        self._templates = [(template, p) for p in self.profiles for template in p.templates]

    def __iter__(self) -> Iterator[CompiledProfile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    def candidates(self, topic: str) -> list[tuple[CompiledProfile, dict[str, str]]]:
        """Every profile whose topic templates match, with the names bound; one entry per profile."""
        found: list[tuple[CompiledProfile, dict[str, str]]] = []
        for template, profile in self._templates:
            if found and found[-1][0] is profile:
                continue
            bindings = template.match(topic)
            if bindings is not None:
                found.append((profile, bindings))
        return found

    def subscriptions(self) -> list[str]:
        """MQTT topic filters covering every profile, without duplicates, in profile order."""
        return list(dict.fromkeys(template.filter for template, _ in self._templates))


def compile_profile(data: Any, *, source: str, tz: str) -> CompiledProfile:
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError("\n".join(f"{source}: {line}" for line in describe_errors(exc))) from None
    spec = DECODERS.get(profile.decoder)
    if spec is None:
        known = ", ".join(sorted(DECODERS))
        raise ProfileError(f"{source}: decoder: unknown decoder {profile.decoder!r} (known: {known})")
    try:
        options = spec.options.model_validate(profile.options)
    except ValidationError as exc:
        lines = describe_errors(exc, prefix=("options",))
        raise ProfileError("\n".join(f"{source}: {line}" for line in lines)) from None
    templates = tuple(TopicTemplate(topic, profile.topic_levels) for topic in profile.topics)
    declines = spec.build_declines(options, tz) if spec.build_declines is not None else None
    return CompiledProfile(profile, options, templates, spec.build(options, tz), declines)


def load_profiles(directory: Path, *, tz: str = "Europe/Berlin") -> ProfileSet:
    """Every ``*.yaml`` in ``directory``; all errors of all files reported together."""
    if not directory.is_dir():
        raise ProfileError(f"{directory}: profile directory does not exist")
    compiled: list[CompiledProfile] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            profile = compile_profile(data, source=str(path), tz=tz)
        except yaml.YAMLError as exc:
            errors.append(f"{path}: not valid YAML: {exc}")
            continue
        except ProfileError as exc:
            errors.append(str(exc))
            continue
        if profile.id != path.stem:
            errors.append(f"{path}: id: must match the file name (got {profile.id!r})")
        elif any(p.id == profile.id for p in compiled):
            errors.append(f"{path}: id: duplicate profile id {profile.id!r}")
        else:
            compiled.append(profile)
    known = {p.id for p in compiled}
    for profile in compiled:
        for other in profile.profile.also_read_by:
            if other not in known or other == profile.id:
                errors.append(f"{profile.id}: also_read_by: {other!r} is not another profile")
    if errors:
        raise ProfileError("\n".join(errors))
    if not compiled:
        raise ProfileError(f"{directory}: no *.yaml profiles found")
    return ProfileSet(compiled)
