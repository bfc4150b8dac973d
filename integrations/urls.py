from django.urls import path

from integrations import views

urlpatterns = [
    path("", views.catalog, name="home"),
]
