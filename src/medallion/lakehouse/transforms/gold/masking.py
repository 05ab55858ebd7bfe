"""Column functions that hide PII on its way to gold: salted hashes and masks.

Each returns NULL for a NULL input, and none of them returns a string that contains the raw value:
a value too short to keep a letter or digits of it visible is masked completely.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as sf
from pyspark.sql.types import StringType

MASK = "***"


def hash_id(value: Column, salt: str) -> Column:
    """Hex ``sha2(concat(salt, ':', value), 256)``: stable per id and salt, not reversible."""
    return sf.sha2(sf.concat(sf.lit(salt), sf.lit(":"), value.cast(StringType())), 256)


def _first_letter_masked(text: Column) -> Column:
    """First character + ``***``; just ``***`` when one character would be the whole value."""
    return sf.when(text.isNull(), sf.lit(None).cast(StringType())).otherwise(
        sf.concat(
            sf.when(sf.length(text) > 1, sf.substring(text, 1, 1)).otherwise(""), sf.lit(MASK)
        )
    )


def mask_name(name: Column) -> Column:
    """``Ada Lopez`` -> ``A***``."""
    return _first_letter_masked(sf.trim(name))


def mask_email(email: Column) -> Column:
    """``ada.lopez1@example.com`` -> ``a***@example.com``; no local part or no ``@``: as a name."""
    address = sf.trim(email)
    at = sf.instr(address, "@")
    local = sf.substring_index(address, "@", 1)
    domain = sf.substring_index(address, "@", -1)
    # With no local part, "***@domain" would contain the raw "@domain"; with no '@' the whole
    # value would pass as the domain: both are masked like a name instead.
    return sf.when(
        at > 1, sf.concat(sf.substring(local, 1, 1), sf.lit(MASK + "@"), domain)
    ).otherwise(_first_letter_masked(address))


def mask_phone(phone: Column) -> Column:
    """``+49 301 5550123`` -> ``***23``; two digits or fewer: ``***``."""
    digits = sf.regexp_replace(phone, r"[^0-9]", "")
    return sf.when(phone.isNull(), sf.lit(None).cast(StringType())).otherwise(
        sf.concat(
            sf.lit(MASK), sf.when(sf.length(digits) > 2, sf.right(digits, sf.lit(2))).otherwise("")
        )
    )
