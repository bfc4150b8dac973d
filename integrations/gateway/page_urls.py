from django.urls import path

from integrations.gateway import pages

# The console's pages about the gateway.
urlpatterns = [
    path("gateway/keys/", pages.key_list, name="gateway-keys"),
    path("gateway/keys/<uuid:pk>/edit", pages.key_edit, name="gateway-key-edit"),
    path("gateway/keys/<uuid:pk>/revoke", pages.key_revoke, name="gateway-key-revoke"),
    path("usage/", pages.usage_page, name="usage"),
    path("usage.csv", pages.usage_csv, name="usage-csv"),
]
