from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from integrations import (  # noqa: F401 - connect their signal receivers
            accounts,
            callcache,
        )
