"""Small built-in word lists and value sets the generator draws from (no faker)."""

from __future__ import annotations

from medallion.platform.devstack.fx_api import BASE_LEVELS, CURRENCIES

FIRST_NAMES: tuple[str, ...] = (
    "Ada", "Alan", "Amara", "Ana", "Ben", "Carla", "Chen", "Dara", "David", "Elena", "Emma",
    "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jade", "James", "Kai", "Lara",
    "Leo", "Lucia", "Maya", "Mateo", "Nia", "Noah", "Olga", "Omar", "Priya", "Paul", "Quinn",
    "Rosa", "Ravi", "Sara", "Sven", "Tara", "Theo", "Uma", "Victor", "Wen", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Adams", "Alvarez", "Brown", "Chen", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
    "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Lopez", "Martin", "Meyer", "Nakamura",
    "Novak", "Okafor", "Patel", "Rossi", "Santos", "Schmidt", "Silva", "Smith", "Tanaka",
    "Taylor", "Walker", "Wang", "Weber", "Williams", "Yilmaz",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = (
    "example.com", "mail.example", "inbox.example", "post.example", "corp.example",
)  # fmt: skip

# country -> (calling code, order currency, weight)
COUNTRIES: dict[str, tuple[str, str, int]] = {
    "US": ("1", "USD", 30),
    "DE": ("49", "EUR", 8),
    "FR": ("33", "EUR", 6),
    "ES": ("34", "EUR", 4),
    "NL": ("31", "EUR", 3),
    "GB": ("44", "GBP", 9),
    "JP": ("81", "JPY", 6),
    "CA": ("1", "CAD", 6),
    "AU": ("61", "AUD", 5),
    "CH": ("41", "CHF", 3),
    "IN": ("91", "INR", 8),
    "BR": ("55", "BRL", 6),
    "MX": ("52", "MXN", 6),
}
COUNTRY_CODES: tuple[str, ...] = tuple(COUNTRIES)
COUNTRY_WEIGHTS: tuple[int, ...] = tuple(weight for _, _, weight in COUNTRIES.values())

LIFECYCLE_STAGES: tuple[str, ...] = (
    "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
    "customer", "evangelist",
)  # fmt: skip
ORDER_STATUSES: tuple[str, ...] = ("placed", "shipped", "delivered", "cancelled", "returned")
ORDER_CURRENCIES: tuple[str, ...] = CURRENCIES
USD_LEVELS: dict[str, float] = BASE_LEVELS
KAFKA_OPS: tuple[str, ...] = ("c", "u", "d")
EVENT_TYPES: tuple[str, ...] = ("page_view", "add_to_cart", "checkout", "purchase", "search")
EVENT_TYPE_WEIGHTS: tuple[int, ...] = (60, 12, 6, 4, 18)
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
DEVICE_WEIGHTS: tuple[int, ...] = (45, 45, 10)
PRODUCTS: tuple[str, ...] = (
    "trail-shoe", "rain-jacket", "wool-socks", "day-pack", "water-bottle", "head-lamp",
    "camp-stove", "sleeping-bag", "trek-poles", "sun-hat",
)  # fmt: skip
SEARCH_TERMS: tuple[str, ...] = ("shoes", "jacket", "tent", "gift", "sale", "socks")
REFERRERS: tuple[str, ...] = ("direct", "google", "newsletter", "facebook", "partner")
APP_VERSIONS: tuple[str, ...] = ("web-2026.10", "ios-5.4.1", "ios-5.5.0", "android-5.4.3")

SESSION_ID_PATTERN = r"^sess_[0-9a-f]{16}$"
V2_COLUMNS: tuple[str, ...] = ("referrer", "app_version")
UNKNOWN_COLUMN = "_debug_flag"
OUT_OF_SET_STATUS = "unknown"
OUT_OF_SET_CURRENCY = "XXX"
OUT_OF_SET_EVENT_TYPE = "unknown"
OUT_OF_SET_DEVICE = "smart_fridge"
OUT_OF_SET_LIFECYCLE = "unknown"
