from django.core.management import call_command


def test_the_django_project_passes_its_checks(capsys):
    call_command("check")
    assert "no issues" in capsys.readouterr().out


def test_the_engine_imports_no_django():
    import subprocess
    import sys

    code = "import sys, sandbox; sys.exit(1 if any(m.split('.')[0] in ('django', 'celery') for m in sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=__file__.rsplit("/tests/", 1)[0]).returncode == 0
