import subprocess
import sys

import pytest

from nectarloss import __version__
from nectarloss.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"nectarloss {__version__}"


def test_help_without_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: nectarloss" in capsys.readouterr().out


def test_console_script_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nectarloss.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "nectarloss" in out.stdout
