"""Saved runs, under ``/runs/`` (included from dashboard/urls.py)."""

from django.urls import path

from dashboard.runs import views as run_views

urlpatterns = [
    path("import/", run_views.run_import, name="run-import"),
    path("<str:run_id>/", run_views.run_page, name="run"),
    path("<str:run_id>/replay/", run_views.run_replay, name="run-replay"),
    path("<str:run_id>/export.json", run_views.run_export, name="run-export"),
    path("<str:run_id>/report/", run_views.run_report, name="run-report"),
]
