"""One client per external system: its connection settings, its URL and how to connect.

The source that reads a system, the sink that writes to it and the local stand-in that plays it
all connect through that system's client, so a URL format is parsed in one place and a password
is masked in one place. ``redshift`` serves Redshift and PostgreSQL (its local stand-in);
``snowflake`` serves Snowflake and fakesnow.
"""
