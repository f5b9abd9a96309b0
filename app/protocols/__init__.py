"""One thin adapter per protocol family (parse, call the scoring core, render) and their base."""
