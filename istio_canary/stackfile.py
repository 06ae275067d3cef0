"""Read and edit a `Pulumi.<stack>.yaml` so that one traffic step changes exactly one line.

Contract of the editor: `set()` rewrites only the characters of one scalar value (or appends one line for a
key the file lacks); every other byte (comments, order, quoting, a BOM, CRLF line endings, `---`/`...`
markers) stays as it was. After each edit the text is parsed again, and the edit is refused unless the
result equals the old document with exactly that one value changed. A file the editor cannot handle that
way (a multi-line value, a flow-style `config`, a stray CR) is refused with ConfigError and nothing is
written. `save()` writes through a temporary file and a rename, so a crash leaves the old file or the new
one, never half of one; it refuses a symlink, which would send the edit outside the repository.

Validation is the Pulumi program's own (istio_canary.release.settings.parse), so a file the tool writes is one the
preview accepts. Only `rollback_view()` is lenient: a rollback needs just the weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from istio_canary import safeload
from istio_canary.release.layout import app_stacks_on
from istio_canary.release.model import AppSettings, LayoutSettings, ReleaseSettings
from istio_canary.release.names import workload
from istio_canary.release.settings import PROJECT, ConfigError, parse, parse_weight, schema
from istio_canary.yamledit import BOM, ODD_BREAKS, EditError, load, plain, read_text, with_value, write_atomically

# What `canary rollback` validates: the app's identity, versions, weight and every `analysis*` key (the checks
# and their thresholds). A typo elsewhere in the stack (an unknown key, a bad gcp:project) must not block an
# emergency rollback.
RELEASE_KEYS = (
    "namespace",
    "appName",
    "image",
    "gaVersion",
    "canaryVersion",
    "canaryWeight",
    "canarySteps",
    "canaryPreSteps",
    "canaryShape",
    "canaryMatch",
    "canaryTagPolicy",
    "prometheusUrl",
)


def is_release_key(key: str, known: Iterable[str]) -> bool:
    """Does `canary rollback` validate this key? (`known`: the schema's keys; a misspelled one is not.)"""
    return key in RELEASE_KEYS or (key.startswith("analysis") and key in known)


@dataclass(frozen=True)
class StackView:
    """The validated release-relevant part of a stack: app identity/versions/weight and the release rules."""

    app: AppSettings
    release: ReleaseSettings
    # Where the stack sits: everything in one stack (the default), a platform, or an app on a platform stack.
    layout: LayoutSettings

    @property
    def ga_workload(self) -> str:
        """Name of the GA Deployment (the Istio `destination_workload` label)."""
        return workload(self.app.name, "ga")

    @property
    def canary_workload(self) -> str:
        """Name of the canary Deployment."""
        return workload(self.app.name, "canary")


class StackFile:
    """One stack file, loaded for validation and one-value edits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The schema is the repository's own Pulumi.yaml (beside the stack file, as Pulumi keeps them).
        self.project_file = path.parent / "Pulumi.yaml"
        try:
            # Bounded: a stack file linked to /dev/zero or a FIFO must not hold a command (or the agent) for ever.
            data = safeload.read_bytes(path, safeload.MAX_STACK_BYTES)
        except safeload.LimitError as exc:
            raise ConfigError(f"{path.name}: {exc}") from None
        except FileNotFoundError:
            raise ConfigError(f"{path}: stack file not found (is --stack right? is -C the repository?)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{path.name}: not UTF-8 (byte {exc.start}); Pulumi writes stack files as UTF-8"
            ) from None
        self.bom = BOM if text.startswith(BOM) else ""
        self.text = text[len(self.bom) :]
        if ODD_BREAKS.search(self.text):
            raise ConfigError(f"{path.name}: has a line break other than LF or CRLF; refusing to read it")
        self.original = self.text
        self._replaced_text: str | None = None
        self.doc = self._parse(self.text)

    def _parse(self, text: str) -> CommentedMap:
        try:
            return load(text)
        except EditError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None

    @classmethod
    def for_stack(cls, repo: Path, stack: str) -> StackFile:
        """The file `Pulumi.<stack>.yaml` in the repository root."""
        return cls(repo / f"Pulumi.{stack}.yaml")

    @staticmethod
    def names(repo: Path) -> list[str]:
        """Every stack with a file in the repository root, sorted (`Pulumi.dev.yaml` -> `dev`)."""
        return sorted(path.name[len("Pulumi.") : -len(".yaml")] for path in repo.glob("Pulumi.?*.yaml"))

    @property
    def config(self) -> CommentedMap:
        """The `config:` mapping (keys with project prefix); empty when the file has none."""
        config = self.doc.get("config")
        return config if config is not None else CommentedMap()

    def values(self) -> dict[str, Any]:
        """Project values without the `istio-canary:` prefix, secrets ({secure: ...}) included as they are."""
        prefix = f"{PROJECT}:"
        return {
            key[len(prefix) :]: plain(value)
            for key, value in self.config.items()
            if isinstance(key, str) and key.startswith(prefix)
        }

    def provider_values(self, provider: str) -> dict[str, Any]:
        """The `<provider>:` keys (e.g. gcp:project), prefix removed."""
        prefix = f"{provider}:"
        return {k[len(prefix) :]: v for k, v in self.config.items() if isinstance(k, str) and k.startswith(prefix)}

    def raw(self, key: str) -> Any:
        """The raw value of a project key (no prefix), or None when unset."""
        return self.config.get(f"{PROJECT}:{key}")

    def view(self) -> StackView:
        """Validate the whole file with the program's own rules (less where it runs) and return the release view."""
        values = self.values()
        stack = self.path.name[len("Pulumi.") : -len(".yaml")]
        # Only a platform stack's refusal of an app key names the app stacks: read the others just then.
        platform = str(values.get("deployApp")).lower() == "false"
        try:
            settings = parse(
                values,
                self.provider_values("gcp"),
                check_environment=False,
                project_file=self.project_file,
                stack=stack,
                app_stacks=app_stacks_on(self.path.parent, stack) if platform else (),
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None
        return StackView(app=settings.app, release=settings.release, layout=settings.layout)

    def rollback_view(self) -> tuple[StackView, Any]:
        """The view for `canary rollback`: only RELEASE_KEYS are validated, and a bad weight is tolerated.

        Returns (view, None), or (view at weight 0, the invalid raw weight) when the weight is the only bad
        release value: setting it to 0 is always safe, so a hand-edited 150 must not block it. A secret
        weight is not "invalid" but unreadable: it is refused, since 0 would be a guess about its value.
        """
        known = schema(self.project_file)
        values = {key: value for key, value in self.values().items() if is_release_key(key, known)}
        weight = values.get("canaryWeight")
        bad_weight = None
        if not isinstance(weight, dict | list):
            try:
                parse_weight(weight if weight is not None else 0)
            except ConfigError:
                bad_weight, values["canaryWeight"] = weight, 0
        try:
            # The versions as image tags only: the tag filter their policy reads them with is not a release key.
            settings = parse(
                values, {}, check_environment=False, project_file=self.project_file, versions_by_policy=False
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None
        return StackView(app=settings.app, release=settings.release, layout=settings.layout), bad_weight

    # --- editing ------------------------------------------------------------------------------------

    def set(self, key: str, value: int | str) -> None:
        """Set a project key as `pulumi config set` writes it (every value a string: `"60"`, `6.9.1`).

        Raises ConfigError, changing nothing, when the edit cannot be made as one value on one line.
        """
        self.check_writable()
        try:
            self.text, self.doc = with_value(self.text, self.doc, f"{PROJECT}:{key}", value)
        except EditError as exc:
            raise ConfigError(f"{self.path.name}: {exc}") from None

    def render(self) -> str:
        """The file text as it would be written now (BOM included)."""
        return self.bom + self.text

    def check_writable(self) -> None:
        """Refuse a stack file the tool must not write: a symlink (the edit would land outside the
        repository, or turn a link git tracks into a file) or one with line breaks the editor cannot keep."""
        if self.path.is_symlink():
            raise ConfigError(f"{self.path.name} is a symbolic link; refusing to write through it")
        if ODD_BREAKS.search(self.text):
            raise ConfigError(f"{self.path.name}: has a line break other than LF or CRLF; refusing to edit it")

    def undo_save(self) -> bool:
        """Put back the text the last save() replaced, but only while the file still holds what that save
        wrote: a newer edit (another process, a person) is never overwritten. True if restored."""
        if self._replaced_text is None or read_text(self.path) != self.render():
            return False
        write_atomically(self.path, self._replaced_text)
        self.text = self.original = self._replaced_text[len(self.bom) :]
        self.doc = self._parse(self.text)
        self._replaced_text = None
        return True

    def save(self, *, rollback: bool = False) -> bool:
        """Validate (as `rollback_view` does when `rollback`), then write atomically; return False (and write
        nothing) when nothing changed."""
        self.check_writable()
        # Never write a file the tool (or, outside a rollback, the preview) could not read back.
        self.rollback_view() if rollback else self.view()
        if self.text == self.original:
            return False
        write_atomically(self.path, self.render())
        self._replaced_text = self.bom + self.original
        self.original = self.text
        return True
