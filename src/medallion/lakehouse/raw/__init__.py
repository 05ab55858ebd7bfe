"""The raw zone: records landed as received, one directory per source, entity and load date."""
