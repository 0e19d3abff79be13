"""A shop's search page whose state survives losing the server it runs on.

The recovery model in one page: persist the user's *inputs* (filters, the chosen product id,
the checkout form), recompute everything derived from them (the product list) on restore, and
check a persisted choice against the recomputed options instead of trusting it. The currency is
session state (``scope="session"``): a reload (F5) or a new tab keeps it, while the rest is this
page's state, which a failover restores and a reload starts afresh.

Run it on one machine with ``bash .ci/demo`` (the memory backend and a "Simulate failover"
button), or behind a fleet with ``SOLARA_STATE_BACKEND=redis``.
"""

from __future__ import annotations

import os
import socket

import attrs
import solara

from solara_persisted import persisted, restore_info, simulate_failover, state_generation


@attrs.frozen
class Product:
    id: str
    name: str
    price: float
    in_stock: bool


CATALOG: dict[str, list[Product]] = {
    "books": [
        Product("b1", "The Pragmatic Programmer", 42.0, True),
        Product("b2", "Designing Data-Intensive Applications", 55.0, True),
        Product("b3", "A Philosophy of Software Design", 25.0, False),
    ],
    "games": [
        Product("g1", "Carcassonne", 35.0, True),
        Product("g2", "Azul", 39.0, False),
        Product("g3", "Codenames", 19.0, True),
    ],
    "music": [
        Product("m1", "Kind of Blue (vinyl)", 29.0, True),
        Product("m2", "OK Computer (CD)", 12.0, True),
    ],
}


@attrs.frozen
class Filters:
    category: str = "books"
    max_price: float = 60.0
    in_stock_only: bool = False


@attrs.frozen
class Checkout:
    step: int = 1
    name: str = ""
    email: str = ""
    address: str = ""


@persisted(key="shop.filters")
def filters() -> Filters:
    return Filters()


@persisted(key="shop.currency", scope="session")
def currency() -> str:
    return "EUR"


RATES = {"EUR": (1.0, "€"), "USD": (1.08, "$"), "GBP": (0.86, "£")}


def price(amount: float) -> str:
    rate, sign = RATES.get(currency.value, RATES["EUR"])
    return f"{amount * rate:.0f} {sign}"


@persisted(key="shop.selected")
def selected() -> str | None:
    return None


@persisted(key="shop.checkout")
def checkout() -> Checkout:
    return Checkout()


# Deliberately not persisted: after a failover it starts again from zero.
clicks = solara.reactive(0)

#: Which instance serves the page: ``demo --fleet`` names its instances; else the host name.
SERVED_BY = os.environ.get("SOLARA_PERSISTED_DEMO_INSTANCE") or socket.gethostname()
FAILOVER_BUTTON = os.environ.get("SOLARA_STATE_TEST_EVICTION", "").lower() in ("1", "true", "yes", "on")


def matching(current: Filters) -> list[Product]:
    """Derived from the persisted filters, so it is recomputed, never stored."""
    return [
        product
        for product in CATALOG.get(current.category, [])
        if product.price <= current.max_price and (product.in_stock or not current.in_stock_only)
    ]


@solara.component
def FilterPanel() -> None:
    current = filters.value
    solara.Select(
        label="Category",
        values=list(CATALOG),
        value=current.category,
        on_value=lambda category: filters.set(attrs.evolve(current, category=category)),
    )
    solara.SliderFloat(
        f"Max price: {price(current.max_price)}",
        value=current.max_price,
        min=5,
        max=100,
        step=1,
        on_value=lambda price: filters.set(attrs.evolve(current, max_price=price)),
    )
    solara.Checkbox(
        label="In stock only",
        value=current.in_stock_only,
        on_value=lambda only: filters.set(attrs.evolve(current, in_stock_only=only)),
    )


@solara.component
def ProductPicker() -> None:
    options = matching(filters.value)
    # A dependent selection done right: the stored id is only a wish; it counts if it is still offered.
    chosen = next((product for product in options if product.id == selected.value), None)
    if options:
        solara.ToggleButtonsSingle(
            value=chosen.id if chosen else None,
            values=[product.id for product in options],
            on_value=selected.set,
        )
        solara.Markdown("\n".join(f"- `{p.id}` {p.name}: {price(p.price)}" for p in options))
    else:
        solara.Info("Nothing matches these filters.")
    solara.Text(f"Selected: {chosen.name if chosen else 'nothing'}")


@solara.component
def CheckoutForm() -> None:
    form = checkout.value

    def update(**changes: object) -> None:
        checkout.set(attrs.evolve(checkout.value, **changes))

    solara.Text(f"Checkout, step {form.step} of 3")
    if form.step == 1:
        solara.InputText("Name", value=form.name, on_value=lambda name: update(name=name))
    elif form.step == 2:
        solara.InputText("Email", value=form.email, on_value=lambda email: update(email=email))
    else:
        solara.InputText("Address", value=form.address, on_value=lambda address: update(address=address))
    with solara.Row():
        solara.Button("Back", disabled=form.step == 1, on_click=lambda: update(step=form.step - 1))
        solara.Button("Next", disabled=form.step == 3, on_click=lambda: update(step=form.step + 1))


@solara.component
def RestoreNote() -> None:
    """What this page's restore brought back, as the app sees it (``restore_info()``)."""
    info = restore_info()
    if info is not None and info.result == "success":
        solara.Success(
            f"Restored {len(info.keys)} value{'' if len(info.keys) == 1 else 's'} on {SERVED_BY} "
            f"in {info.duration * 1000:.0f} ms (last saved {info.age or 0:.0f} s ago): {', '.join(info.keys)}"
        )


@solara.component
def WhatIsKept() -> None:
    solara.Markdown(
        f"""
Served by **{SERVED_BY}**. What this page keeps when its server goes away:

| value | kept | a failover | a reload (F5) or a new tab |
| :-- | :-- | :-- | :-- |
| filters, selected product, checkout | per page (`@persisted`) | restored | starts afresh |
| currency | per browser session (`scope="session"`) | restored | kept |
| unsaved clicks | not persisted (`solara.reactive`) | starts again at 0 | starts again at 0 |
"""
    )


@solara.component
def Page() -> None:
    solara.Title("solara-persisted shop")
    with solara.Column(align="center", style={"width": "100%"}), solara.Column(
        style={"max-width": "720px", "width": "100%"}
    ):
        solara.Markdown("# Shop")
        RestoreNote()
        WhatIsKept()
        solara.ToggleButtonsSingle(value=currency.value, values=list(RATES), on_value=currency.set)
        solara.Text(f"Currency: {currency.value}. It is session state: reload the page and it stays.")
        FilterPanel()
        ProductPicker()
        CheckoutForm()
        solara.Button(f"Unsaved clicks: {clicks.value}", on_click=lambda: clicks.set(clicks.value + 1))
        generation = state_generation()
        solara.Text(f"Persistence generation: {generation if generation is not None else 'off'}")
        if FAILOVER_BUTTON:
            solara.Button("Simulate failover", color="warning", on_click=simulate_failover)
