from django.urls import path

from dashboard.compare import views

urlpatterns = [
    path("new/", views.new, name="compare-new"),
    path("<str:compare_id>/", views.page, name="compare"),
    path("<str:compare_id>/pane/<str:side>/", views.pane, name="compare-pane"),
    path("<str:compare_id>/control/<str:side>/", views.control, name="compare-control"),
    path("<str:compare_id>/end/", views.end, name="compare-end"),
]
