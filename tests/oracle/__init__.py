"""An independent oracle for the gold tables: DuckDB SQL over the generator's records."""
