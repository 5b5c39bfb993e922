from django.urls import include, path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("scenario-format/", views.scenario_format, name="scenario-format"),
    path("docs/<str:name>/", views.doc, name="doc"),
    path("join/", views.join, name="join-form"),
    path("r/<str:code>/", views.join, name="join"),
    path("rooms/<str:room_id>/", views.room_page, name="room"),
    path("rooms/<str:room_id>/present/<str:key>/", views.present, name="present"),
    path("rooms/<str:room_id>/control/", views.control, name="room-control"),
    path("rooms/<str:room_id>/fork/", views.fork, name="room-fork"),
    path("rooms/<str:room_id>/ask/", views.ask, name="room-ask"),
    path("rooms/<str:room_id>/reveal/", views.reveal, name="room-reveal"),
    path("rooms/<str:room_id>/vote/", views.vote, name="room-vote"),
    path("rooms/<str:room_id>/end/", views.end, name="room-end"),
    path("rooms/<str:room_id>/kafka/", views.kafka, name="room-kafka"),
    path("rooms/<str:room_id>/lanes/<str:partition>/", views.lane, name="room-lane"),
    path("runs/", include("dashboard.runs.urls")),
    path("compare/", include("dashboard.compare.urls")),
]
