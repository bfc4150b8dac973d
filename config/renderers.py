"""How every console form field renders: one template, `integrations/_field.html`."""

from __future__ import annotations

from django.forms.renderers import TemplatesSetting


class ConsoleFormRenderer(TemplatesSetting):
    """`{{ form.field.as_field_group }}` renders label, input, help and errors the console's
    way; a field may carry `show_when` ("kind=bearer,header") for the page's show/hide."""

    field_template_name = "integrations/_field.html"
