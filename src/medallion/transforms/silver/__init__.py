"""Bronze -> silver transforms, one module per silver table; ``dedupe`` marks what a batch drops."""
