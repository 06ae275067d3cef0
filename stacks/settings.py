"""The Pulumi program's reading of its stack config: pulumi.Config's values (every key the engine handed over, typos
included) into the release core's model, validated by istio_canary.release.settings.parse, plus the agent's
secrets as Pulumi secrets. The `canary` tool reads stack files itself and never imports this module.
"""

from __future__ import annotations

from pathlib import Path

from istio_canary.release import layout
from istio_canary.release.settings import (
    PROJECT,
    UNDECLARED_KEYS,
    ConfigError,
    Settings,
    parse,
    schema,
)

__all__ = ["ConfigError", "Settings", "load", "parse", "schema"]


def load() -> Settings:
    """Read the current stack's config through pulumi.Config and validate it, typos included."""
    import dataclasses

    import pulumi
    from pulumi.runtime import config as runtime_config

    # pulumi.Config only answers for keys it is asked about; a misspelled key in the stack file (canaryWeigth)
    # would be silently ignored, so ask for every key the engine handed over as well.
    handed_over = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env() or {})
    stack_keys = {key.split(":", 1)[1] for key in handed_over if key.startswith(f"{PROJECT}:")}
    project_config = pulumi.Config()
    gcp_config = pulumi.Config("gcp")
    raw = {key: project_config.get(key) for key in (set(schema()) | stack_keys) - set(UNDECLARED_KEYS)}
    stack = pulumi.get_stack()
    settings = parse(
        {k: v for k, v in raw.items() if v is not None},
        {"project": gcp_config.get("project"), "region": gcp_config.get("region")},
        stack=stack,
        app_stacks=layout.app_stacks_on(Path.cwd(), stack),
    )
    # The agent's secrets, read as Pulumi secrets so they stay secret outputs up to its Kubernetes Secret. parse()
    # never sees them: the `canary` tool validates a stack file without its secrets.
    secrets = {key: project_config.get_secret(key) for key in ("agentGitToken", "slackWebhookUrl")}
    if settings.agent.enabled:
        errors = []
        for key, value in secrets.items():
            # A plain value is a credential committed to the stack file; its value is never shown.
            if value is not None and not runtime_config.is_config_secret(f"{PROJECT}:{key}"):
                errors.append(f"{PROJECT}:{key}: is plain text; set it with `pulumi config set --secret {key} ...`")
        token_set = bool((project_config.get("agentGitToken") or "").strip())
        if settings.agent.git_token_secret and token_set:
            errors.append(
                f"{PROJECT}:agentGitToken: set although {PROJECT}:agentGitTokenSecret names the Secret that holds "
                "the token; keep one (the Secret: then the token is in no stack config and no state)"
            )
        elif not settings.agent.git_token_secret and not token_set:
            errors.append(
                f"{PROJECT}:agentGitToken: releaseAgent is true but this secret is not set; the agent could neither "
                "push a rollback nor open a pull request (`pulumi config set --secret agentGitToken <token>`, a token "
                "whose pushes start workflows, not GITHUB_TOKEN; or name a Secret made outside Pulumi in "
                "agentGitTokenSecret)"
            )
        if errors:
            raise ConfigError("invalid stack config:\n  " + "\n  ".join(errors))
    agent = dataclasses.replace(
        settings.agent, git_token=secrets["agentGitToken"], slack_webhook_url=secrets["slackWebhookUrl"]
    )
    return dataclasses.replace(settings, agent=agent)
