"""Pure ``DataFrame -> DataFrame`` transforms, one module per dataset: no reads, no writes."""
