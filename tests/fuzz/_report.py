"""How many inputs each fuzzed entry was checked on (for the closing figures)."""

import os


def report_count(name: str, configurations: int, inputs: int) -> None:
    """With `FUZZ_REPORT=path`, append how many inputs an entry was checked on."""
    path = os.environ.get("FUZZ_REPORT")
    if path:
        with open(path, "a") as sink:
            sink.write(f"{name}\t{configurations}\t{inputs}\n")
