"""The numpy loader never imports torch; the torch module says which extra to install when torch is missing."""

from __future__ import annotations

import subprocess
import sys


def test_the_numpy_loader_imports_no_torch() -> None:
    code = "import sys, rdstd.loader; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_torch_the_torch_module_names_the_extra() -> None:
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "from rdstd.errors import MissingDependencyError\n"
        "try:\n    import rdstd.loader.torchdata\nexcept MissingDependencyError as exc:\n    print(exc.one_line())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[RD300]" in out.stdout and "rdstd[torch]" in out.stdout
