"""scripts/time_against_authors.py without the authors' code: it refuses a path that is not their checkout."""
import runpy
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_against_authors.py"


def test_refuses_a_path_that_is_not_the_authors_checkout(tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    with pytest.raises(SystemExit, match="does not look like a checkout of PruneTruong/GOCor"):
        main(["--authors", str(tmp_path), "--rounds", "1"])
