"""Bundled plugins. Each registers through the public hooks and the ``babyvlm`` entry-point group."""
