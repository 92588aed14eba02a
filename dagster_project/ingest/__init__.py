"""Loading landing files into the raw layer of the warehouse."""
