from django.db import migrations

EDIT = ("add", "change", "delete", "view")
MODELS = ("authprofile", "integration", "integrationheader", "custommodel", "connectiontest")


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # Permissions are normally created after migrations run; make sure they exist now.
    for model in MODELS:
        ct, _ = ContentType.objects.get_or_create(app_label="integrations", model=model)
        for action in EDIT:
            Permission.objects.get_or_create(
                content_type=ct,
                codename=f"{action}_{model}",
                defaults={"name": f"Can {action} {model}"},
            )
    perms = Permission.objects.filter(content_type__app_label="integrations")
    admin, _ = Group.objects.get_or_create(name="Admin")
    admin.permissions.set(
        Permission.objects.filter(content_type__app_label__in=["integrations", "auth", "sandbox"])
    )
    editor, _ = Group.objects.get_or_create(name="Editor")
    editor.permissions.set(perms)
    member, _ = Group.objects.get_or_create(name="Member")
    member.permissions.set(perms.filter(codename__startswith="view_"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Admin", "Editor", "Member"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
