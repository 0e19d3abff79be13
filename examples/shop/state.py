"""The example shop's cart, at version 3 of its spec, with the migrations that got it there.

- version 1 stored ``{"product_ids": [...], "total": "12.50"}``;
- version 2 renamed ``product_ids`` to ``skus``;
- version 3 stores ``total`` as integer cents instead of a decimal string, and adds ``coupon``.

Its schemas are committed under ``schemas/shop.cart/`` (v1.json, v2.json, v3.json) and
``solara-persisted check examples/shop/state.py`` keeps this module and them in agreement.
"""

from __future__ import annotations

import decimal

import attrs

from solara_persisted import persisted
from solara_persisted.migrations import AddField, Convert, Rename, migration


@attrs.frozen
class Cart:
    skus: tuple[str, ...] = ()
    total: int = 0  # cents
    coupon: str | None = None


@persisted(key="shop.cart", version=3)
def cart() -> Cart:
    return Cart()


def text_to_cents(text: str) -> int:
    """``"12.50"`` (how versions 1 and 2 stored the total) to ``1250``."""
    return int(decimal.Decimal(text).scaleb(2).to_integral_exact())


def cents_to_text(cents: int) -> str:
    """``1250`` back to ``"12.50"``, so an instance still on version 2 can read a version 3 cart."""
    return str(decimal.Decimal(cents).scaleb(-2).quantize(decimal.Decimal("0.01")))


migration(cart, from_version=1, ops=[Rename("product_ids", "skus")])
migration(
    cart,
    from_version=2,
    ops=[
        Convert("total", text_to_cents, cents_to_text),
        AddField("coupon", None),
    ],
)
