from django.urls import path

from djproject.shop import views

urlpatterns = [path("order/<str:item>/", views.order)]
