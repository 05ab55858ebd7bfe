"""Bronze -> silver transforms: a table's own transform (``fact_orders``) and the dedupe every
silver table shares (``dedupe``); the rest of a table is its spec in ``config/dq/silver``."""
