from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

app_name = "demo"

urlpatterns = [
    path("", views.index, name="index"),
    path("demo/kiosk/", views.kiosk_page, name="kiosk"),
    path("demo/kiosk/purchases/", views.kiosk_start, name="kiosk-start"),
    path("demo/kiosk/purchases/<str:purchase_id>/", views.kiosk_status, name="kiosk-status"),
    path("demo/callbacks/<str:mode>/", views.callback, name="callback"),
    path("demo/phone/", views.phone_page, name="phone"),
    path("demo/login/", auth_views.LoginView.as_view(template_name="demo/login.html"), name="login"),
    path("demo/logout/", auth_views.LogoutView.as_view(next_page="/demo/login/"), name="logout"),
]
