"""Masking and hashing: the documented shapes, NULL in -> NULL out, never the raw value."""

from __future__ import annotations

import hashlib
import random
import string

from pyspark.sql import SparkSession
from pyspark.sql import functions as sf
from pyspark.testing import assertDataFrameEqual

from medallion.lakehouse.spark import local_frame
from medallion.lakehouse.transforms.gold.masking import hash_id, mask_email, mask_name, mask_phone
from medallion.platform.generate import vocab

SALT = "test-salt"
PII = "id STRING, name STRING, email STRING, phone STRING"
MASKED = "id STRING, name STRING, email STRING, phone STRING"


def test_masks_and_hash_have_the_documented_shape(spark: SparkSession) -> None:
    pii = local_frame(
        spark,
        [
            ("cust_0000001", "Ada Lopez", "ada.lopez1@example.com", "+49 301 5550123"),
            ("cust_0000002", "A", "@example.com", "12"),
            (None, None, None, None),
        ],
        PII,
    )

    masked = pii.select(
        hash_id(sf.col("id"), SALT).alias("id"),
        mask_name(sf.col("name")).alias("name"),
        mask_email(sf.col("email")).alias("email"),
        mask_phone(sf.col("phone")).alias("phone"),
    )

    digest = hashlib.sha256(f"{SALT}:cust_0000001".encode()).hexdigest()
    digest_2 = hashlib.sha256(f"{SALT}:cust_0000002".encode()).hexdigest()
    expected = local_frame(
        spark,
        [
            (digest, "A***", "a***@example.com", "***23"),
            # too short to show a letter or digits without showing the whole value
            (digest_2, "***", "@***", "***"),
            (None, None, None, None),
        ],
        MASKED,
    )
    assertDataFrameEqual(masked, expected, checkRowOrder=False)


def test_masked_values_never_contain_the_raw_value(spark: SparkSession) -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + ".-_ +"

    def word() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))

    rows = [
        (
            f"{rng.choice(vocab.FIRST_NAMES)} {rng.choice(vocab.LAST_NAMES)}" if n % 2 else word(),
            f"{word()}@{rng.choice(vocab.EMAIL_DOMAINS)}" if n % 3 else word(),
            f"+{rng.randint(1, 99)} {rng.randint(0, 999)} {rng.randint(0, 9_999_999)}"
            if n % 4
            else word(),
        )
        for n in range(500)
    ]
    pii = local_frame(spark, rows, "name STRING, email STRING, phone STRING")

    leaks = pii.where(
        (sf.instr(mask_name(sf.col("name")), sf.col("name")) > 0)
        | (sf.instr(mask_email(sf.col("email")), sf.col("email")) > 0)
        | (sf.instr(mask_phone(sf.col("phone")), sf.col("phone")) > 0)
    )

    assertDataFrameEqual(leaks, local_frame(spark, [], pii.schema))
