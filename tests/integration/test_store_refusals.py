"""Store news we cannot act on is recorded and answered 200, never refused: the store
redelivers every other answer (Pub/Sub for seven days, Apple for three), and the
news would be refused again each time."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tests.integration.test_purchases_google import Google, google, play  # noqa: F401

SEEN = "SELECT count(*) FROM store_notifications WHERE notification_id = %s"


async def test_a_purchase_of_a_product_that_is_not_credits_is_recorded_once(
    google: Google,  # noqa: F811
) -> None:
    user = uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "remove_ads", user)  # another of the app's products
    news = {
        "oneTimeProductNotification": {
            "version": "1.0",
            "notificationType": 1,
            "purchaseToken": token,
            "sku": "remove_ads",
        }
    }
    first = await google.push(news, message_id="m-remove-ads")
    assert first.status_code == 200, first.text
    assert first.json()["actions"] == ["unknown_product"]
    assert google.rows(SEEN, "m-remove-ads") == 1
    again = await google.push(news, message_id="m-remove-ads")
    assert again.status_code == 200 and again.json()["actions"] == ["duplicate"]
    assert await google.balance(user) == 0


async def test_a_subscription_product_sold_as_a_pack_is_refused_and_recorded(
    google: Google,  # noqa: F811
) -> None:
    """A one-time purchase notification naming a product the catalog sells as a
    subscription: nothing to grant, however often it comes."""
    user = uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "pro_monthly", user)
    news = {
        "oneTimeProductNotification": {
            "version": "1.0",
            "notificationType": 1,
            "purchaseToken": token,
            "sku": "pro_monthly",
        }
    }
    answer = await google.push(news, message_id="m-odd")
    assert answer.status_code == 200, answer.text
    [action] = answer.json()["actions"]
    assert action.startswith("refused:") and "subscription" in action
    assert google.rows(SEEN, "m-odd") == 1
    assert await google.balance(user) == 0
    sub = f"sub-{uuid.uuid4()}"
    google.play.set_subscription(
        sub, "legacy_plan", user, expiry=google.clock.now() + timedelta(days=20)
    )
    legacy = await google.push(
        {
            "subscriptionNotification": {
                "version": "1.0",
                "notificationType": 4,
                "purchaseToken": sub,
                "subscriptionId": "legacy_plan",
            }
        }
    )
    assert legacy.status_code == 200 and legacy.json()["actions"] == ["unknown_product"]
