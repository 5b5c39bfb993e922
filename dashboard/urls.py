from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("rooms/<str:room_id>/", views.room_page, name="room"),
    path("rooms/<str:room_id>/control/", views.control, name="room-control"),
    path("rooms/<str:room_id>/lanes/<str:partition>/", views.lane, name="room-lane"),
]
