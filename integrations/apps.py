from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        # Connect their signal receivers.
        from integrations import callcache  # noqa: F401
        from integrations.team import accounts  # noqa: F401
