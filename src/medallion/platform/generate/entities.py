"""Clean records of each entity, one builder per entity, each on its own random stream."""

from __future__ import annotations

import random
from bisect import bisect_left
from datetime import UTC, datetime, time, timedelta

from medallion.platform.devstack.fx_api import synthetic_usd_rate
from medallion.platform.generate import vocab
from medallion.platform.generate.config import GeneratorConfig, stream
from medallion.platform.generate.model import Record

DAY_SECONDS = 86_400
HISTORY_DAYS = 730  # customers who existed before the window signed up within this many days
NEW_CUSTOMER_SHARE = 0.1  # customers who sign up during the window
LAST_SECOND_OF_DAY = 86_000  # leaves room for a later version on the same day
SESSION_SPAN_SECONDS = 3_600  # sessions start early enough to end on the day they started


def window_start(config: GeneratorConfig) -> datetime:
    """Midnight UTC of the first day."""
    return datetime.combine(config.start_date, time(), UTC)


def _person(rng: random.Random, number: int) -> tuple[str, str, str, str]:
    """A name, email, phone and country drawn from the word lists."""
    first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
    country = rng.choices(vocab.COUNTRY_CODES, vocab.COUNTRY_WEIGHTS)[0]
    email = f"{first}.{last}{number}@{rng.choice(vocab.EMAIL_DOMAINS)}".lower()
    return f"{first} {last}", email, _phone(rng, country), country


def _phone(rng: random.Random, country: str) -> str:
    """A phone number in international format for ``country``."""
    calling_code = vocab.COUNTRIES[country][0]
    return f"+{calling_code} {rng.randrange(200, 999)} {rng.randrange(1_000_000, 9_999_999)}"


def _changed(version: Record, rng: random.Random, modified: datetime) -> Record:
    """The next CRM version: a stage moves on, or the phone or email changes."""
    changed = dict(version, last_modified_date=modified)
    stage_index = vocab.LIFECYCLE_STAGES.index(version["lifecycle_stage"])
    roll = rng.random()
    if roll < 0.6 and stage_index + 1 < len(vocab.LIFECYCLE_STAGES):
        changed["lifecycle_stage"] = vocab.LIFECYCLE_STAGES[stage_index + 1]
    elif roll < 0.8:
        changed["phone"] = _phone(rng, version["country"])
    else:
        local = version["email"].split("@")[0]
        changed["email"] = f"{local}@{rng.choice(vocab.EMAIL_DOMAINS)}"
    return changed


def _created_ats(config: GeneratorConfig, rng: random.Random) -> list[datetime]:
    """Sign-up times in ascending order, so customer numbers follow sign-up order."""
    start = window_start(config)
    n_new = round(NEW_CUSTOMER_SHARE * config.n_customers)
    before = sorted(
        (rng.randrange(1, HISTORY_DAYS * DAY_SECONDS) for _ in range(config.n_customers - n_new)),
        reverse=True,
    )
    during = sorted(rng.randrange(config.days * DAY_SECONDS) for _ in range(n_new))
    return [start - timedelta(seconds=s) for s in before] + [
        start + timedelta(seconds=s) for s in during
    ]


def build_customers(config: GeneratorConfig) -> tuple[list[Record], list[Record]]:
    """The CRM truth (one row per customer_id) and every CRM version, late updates included."""
    rng, update_rng = stream(config.seed, "customers"), stream(config.seed, "crm_updates")
    start = window_start(config)
    created = _created_ats(config, rng)
    n_before = sum(1 for moment in created if moment < start)
    late = set(stream(config.seed, "crm_late").sample(range(n_before), config.n_late_updates))
    customers: list[Record] = []
    versions: list[Record] = []
    for index, created_at in enumerate(created):
        name, email, phone, country = _person(rng, index + 1)
        first: Record = {
            "customer_id": f"cust_{index + 1:07d}",
            "name": name,
            "email": email,
            "phone": phone,
            "country": country,
            "lifecycle_stage": rng.choice(vocab.LIFECYCLE_STAGES[:4]),
            "last_modified_date": created_at,
            "available_on": max(created_at.date(), config.start_date),
        }
        history = [first]
        for _ in range(update_rng.choices((0, 1, 2), (70, 22, 8))[0]):
            offset = update_rng.randrange(config.days * DAY_SECONDS)
            modified = start + timedelta(seconds=offset)
            if modified > history[-1]["last_modified_date"]:
                update = _changed(history[-1], update_rng, modified)
                history.append(dict(update, available_on=modified.date()))
        if index in late:
            history.append(_late_update(config, history[-1], update_rng))
        versions.extend(history)
        latest = max(history, key=lambda version: version["last_modified_date"])
        truth = {key: value for key, value in latest.items() if key != "available_on"}
        truth.pop("last_modified_date")
        customers.append(dict(truth, created_at=created_at))
    return customers, versions


def _late_update(config: GeneratorConfig, previous: Record, rng: random.Random) -> Record:
    """A version modified on one day that the API only returns one to three days later."""
    modified_day = rng.randrange(config.days - 1)
    delay = rng.randint(1, min(3, config.days - 1 - modified_day))
    modified = window_start(config) + timedelta(
        days=modified_day, seconds=rng.randrange(DAY_SECONDS)
    )
    update = _changed(previous, rng, modified)
    return dict(update, available_on=modified.date() + timedelta(days=delay))


def pick_customer(
    customers: list[Record], created: list[datetime], moment: datetime, rng: random.Random
) -> Record:
    """A customer who had signed up before ``moment``."""
    return customers[rng.randrange(max(1, bisect_left(created, moment)))]


def _status_path(rng: random.Random, order_ts: datetime) -> list[tuple[str, datetime]]:
    """Every status an order goes through, with the time it changed."""
    path = [("placed", order_ts)]
    if rng.random() < 0.08:
        return [*path, ("cancelled", order_ts + timedelta(hours=rng.randint(1, 30)))]
    shipped = order_ts + timedelta(hours=rng.randint(12, 48), seconds=rng.randrange(3_600))
    delivered = shipped + timedelta(hours=rng.randint(24, 96), seconds=rng.randrange(3_600))
    path += [("shipped", shipped), ("delivered", delivered)]
    if rng.random() < 0.06:
        path.append(("returned", delivered + timedelta(hours=rng.randint(48, 120))))
    return path


def build_orders(
    config: GeneratorConfig, customers: list[Record]
) -> tuple[list[Record], list[Record]]:
    """Snowflake order versions (one per order and day it changed) and Kafka CDC events."""
    rng = stream(config.seed, "orders")
    start, end = window_start(config), window_start(config) + timedelta(days=config.days)
    created = [customer["created_at"] for customer in customers]
    versions: list[Record] = []
    events: list[Record] = []
    for index in range(config.n_orders):
        day = index * config.days // config.n_orders
        order_ts = start + timedelta(days=day, seconds=rng.randrange(LAST_SECOND_OF_DAY))
        customer = pick_customer(customers, created, order_ts, rng)
        currency = vocab.COUNTRIES[customer["country"]][1]
        usd_amount = max(1.0, rng.lognormvariate(4.0, 0.6))
        amount = round(usd_amount * vocab.USD_LEVELS[currency], 2)
        path = [(status, moment) for status, moment in _status_path(rng, order_ts) if moment < end]
        streamed = rng.random() < 0.7
        base = {"order_id": f"ord_{index + 1:08d}", "customer_id": customer["customer_id"]}
        daily_last = {moment.date(): (status, moment) for status, moment in path}
        days = sorted(daily_last)
        for position, visible_on in enumerate(days):
            status, moment = daily_last[visible_on]
            versions.append(
                dict(base, order_ts=order_ts, status=status, currency=currency)
                | {"order_amount": amount, "updated_at": moment, "available_on": visible_on}
                | {"superseded_on": days[position + 1] if position + 1 < len(days) else None}
            )
        if streamed:
            for position, (status, moment) in enumerate(path):
                op = "c" if position == 0 else "d" if status == "cancelled" else "u"
                events.append(dict(base, amount=amount, currency=currency, event_ts=moment, op=op))
    return versions, events


def _page(rng: random.Random, event_type: str) -> str:
    """The page an event of ``event_type`` happens on."""
    product = rng.choice(vocab.PRODUCTS)
    pages = {
        "page_view": rng.choice(("/", f"/products/{product}", "/sale")),
        "add_to_cart": f"/products/{product}",
        "checkout": "/checkout",
        "purchase": "/checkout/confirmation",
        "search": f"/search?q={rng.choice(vocab.SEARCH_TERMS)}",
    }
    return pages[event_type]


def build_behavior(config: GeneratorConfig, customers: list[Record]) -> list[Record]:
    """Behavior events in sessions of one to eight; v2 events carry referrer and app_version."""
    rng = stream(config.seed, "behavior")
    start = window_start(config)
    created = [customer["created_at"] for customer in customers]
    events: list[Record] = []
    while len(events) < config.n_events:
        day = len(events) * config.days // config.n_events
        size = min(rng.randint(1, 8), config.n_events - len(events))
        moment = start + timedelta(
            days=day, seconds=rng.randrange(DAY_SECONDS - SESSION_SPAN_SECONDS)
        )
        customer = pick_customer(customers, created, moment, rng)
        device = rng.choices(vocab.DEVICES, vocab.DEVICE_WEIGHTS)[0]
        session_id = f"sess_{rng.getrandbits(64):016x}"
        v2 = moment.date() >= config.v2_from
        extra: Record = {}
        if v2:
            app = vocab.APP_VERSIONS[0] if device == "desktop" else rng.choice(vocab.APP_VERSIONS)
            extra = {"referrer": rng.choice(vocab.REFERRERS), "app_version": app}
        for position in range(size):
            event_type = (
                "page_view"
                if position == 0
                else rng.choices(vocab.EVENT_TYPES, vocab.EVENT_TYPE_WEIGHTS)[0]
            )
            events.append(
                {
                    "event_id": f"evt_{len(events) + 1:09d}",
                    "session_id": session_id,
                    "customer_id": customer["customer_id"],
                    "event_type": event_type,
                    "event_ts": moment,
                    "page": _page(rng, event_type),
                    "device": device,
                }
                | extra
                | {"schema_version": 2 if v2 else 1}
            )
            moment += timedelta(seconds=rng.randint(5, 300))
    return events


def build_fx_rates(config: GeneratorConfig) -> list[Record]:
    """One USD-based rate per day and currency, as the FX stand-in serves them."""
    return [
        {
            "date": day,
            "base": "USD",
            "currency": currency,
            "rate": synthetic_usd_rate(config.seed, day, currency),
        }
        for day in (config.start_date + timedelta(days=n) for n in range(config.days))
        for currency in vocab.ORDER_CURRENCIES
    ]
