from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from console.roles import roles_ensure_on_migrate

        # Roles need the permissions, which Django creates after migrating.
        post_migrate.connect(roles_ensure_on_migrate, dispatch_uid="baton-roles")
