from django.db import migrations


def rename(apps, schema_editor):
    ConnectionTest = apps.get_model("integrations", "ConnectionTest")
    ConnectionTest.objects.filter(error_kind="bad_shape").update(error_kind="bad_response")


def rename_back(apps, schema_editor):
    ConnectionTest = apps.get_model("integrations", "ConnectionTest")
    ConnectionTest.objects.filter(error_kind="bad_response").update(error_kind="bad_shape")


class Migration(migrations.Migration):
    """The error kind "bad_shape" is now "bad_response" (ErrorKind)."""

    dependencies = [("integrations", "0005_stored_secret_reference")]
    operations = [migrations.RunPython(rename, rename_back)]
