"""Child process of test_hostile_inputs.py: run the named hostile cases under an address-space limit.

``python memlimit_child.py LIMIT_BYTES NAME...`` imports the corpus, caps RLIMIT_AS, runs each case in
its own temp directory and prints one JSON line ``{name: result}`` (see ``run_case``). A case that
tried to allocate past the limit shows up as a MemoryError result, not a dead machine."""
from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile


def main() -> int:
    limit, names = int(sys.argv[1]), sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
    from reliability import test_hostile_inputs as corpus

    by_name = {c.name: c for c in corpus.CASES}
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    results = {}
    for name in names:
        root = tempfile.mkdtemp(prefix="gf-hostile-")
        try:
            results[name] = corpus.run_case(by_name[name], root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
