from django.db import transaction
from django.http import HttpResponse

from djproject.shop.models import Order
from djproject.shop.tasks import ship


@transaction.atomic
def order(request, item):
    """Create an order and ship it in the background, once the order is committed."""
    new = Order.objects.create(item=item)
    handle = ship.delay(new.pk)
    if request.GET.get("fail"):
        transaction.set_rollback(True)
    return HttpResponse(handle.id)
