from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "demo"

urlpatterns = [
    path("", views.index, name="index"),
    path("demo/kiosk/", views.kiosk_page, name="kiosk"),
    path("demo/kiosk/purchases/", views.kiosk_start, name="kiosk-start"),
    path("demo/kiosk/purchases/<str:purchase_id>/", views.kiosk_status, name="kiosk-status"),
    path("demo/kiosk/purchases/<str:purchase_id>/cancel/", views.kiosk_cancel, name="kiosk-cancel"),
    path("demo/callbacks/<str:mode>/", views.callback, name="callback"),
    # The demo's own phone page became django-ciba's device page; old links still work.
    path("demo/phone/", RedirectView.as_view(pattern_name="ciba_device:home", permanent=True), name="phone"),
    # The site's own login (settings.LOGIN_URL), which the device page sends users to.
    path("demo/login/", auth_views.LoginView.as_view(template_name="demo/login.html"), name="login"),
    path("demo/logout/", auth_views.LogoutView.as_view(next_page="/demo/login/"), name="logout"),
]
