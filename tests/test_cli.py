import subprocess
import sys

import pytest

from erpose.cli.main import VERBS, main


def test_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_verb_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0


def test_console_script_runs():
    proc = subprocess.run([sys.executable, "-m", "erpose.cli.main", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "erpose" in proc.stdout
