"""One registry pattern for the config groups whose options are code: architectures, extractors
and dataset loaders.

An entry is a name, the settings class its YAML keys parse into, the function that does its job,
and its traits: facts other code asks about (``dense``, ``batchnorm``, ...) that the entry
declares, so no caller tests an entry by its name. A trait is a constant or a function of the
entry's settings (``batchnorm=lambda s: s.norm == "batch"``)::

    ARCHITECTURES = Registry("architecture")

    @ARCHITECTURES.register("lenet5", LeNet5Settings, dense=False, batchnorm=False)
    def lenet5(settings, input_shape, num_classes): ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from classvis.validation import parse, require

Function = TypeVar("Function", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[Function]):
    name: str
    settings_class: type | None  # None: the group's one settings class, shared by every entry
    function: Function
    traits: Mapping[str, Any] = field(default_factory=dict)

    def trait(self, trait: str, settings: Any = None) -> Any:
        """The entry's value of ``trait``; one declared as a function is asked about
        ``settings``."""
        if trait not in self.traits:
            raise KeyError(f"{self.name} declares no trait {trait!r}")
        value = self.traits[trait]
        return value(settings) if callable(value) else value


class Registry(Generic[Function]):
    """The named entries of one config group; every entry declares the same traits."""

    def __init__(self, group: str, traits: tuple[str, ...] = ()):
        self.group = group
        self.trait_names = traits
        self._entries: dict[str, Entry[Function]] = {}

    def register(self, name: str, settings_class: type | None, **traits: Any
                 ) -> Callable[[Function], Function]:
        """Register the decorated function as entry ``name``."""
        missing = set(self.trait_names) ^ set(traits)
        if missing:
            raise TypeError(f"{self.group} {name}: traits {sorted(self.trait_names)} are declared "
                            f"by every entry, got {sorted(traits)}")
        if name in self._entries:
            raise ValueError(f"{self.group} {name} is registered twice")

        def decorate(function: Function) -> Function:
            self._entries[name] = Entry(name, settings_class, function, traits)
            return function
        return decorate

    def __getitem__(self, name: str) -> Entry[Function]:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[Entry[Function]]:
        return list(self._entries.values())

    def entry(self, name: object, key: str) -> Entry[Function]:
        """Entry ``name``, or a ``ConfigError`` at ``key`` listing the registered names."""
        require(name in self._entries, key, "one of " + ", ".join(sorted(self._entries)), name)
        return self._entries[str(name)]

    def parse(self, node: Any, key: str, name_key: str = "name") -> tuple[str, Any]:
        """The entry named by ``node[name_key]`` and its settings, checked; ``key`` is the
        config key of ``node`` (``extractor``, ``teacher``...)."""
        require(isinstance(node, Mapping) and name_key in node, f"{key}.{name_key}",
                f"a{'n' if self.group[0] in 'aeiou' else ''} {self.group} name",
                None if isinstance(node, Mapping) else node)
        options = dict(node)
        name = options[name_key]
        settings_class = self.entry(name, f"{key}.{name_key}").settings_class
        assert settings_class is not None, f"{self.group} entries share one settings class"
        if name_key not in {f.name for f in dataclasses.fields(settings_class)}:
            del options[name_key]  # the settings do not repeat the entry's name
        return name, parse(settings_class, options, key)


__all__ = ["Entry", "Registry"]
