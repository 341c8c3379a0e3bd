"""Built-in skills; registered through the entry-point group ``xiangyin.skills`` in pyproject.toml."""
