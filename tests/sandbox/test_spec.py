import pytest

from sandbox import FunctionSpec


@pytest.mark.parametrize(
    "setting, value",
    [
        ("memory_mb", 127),
        ("memory_mb", 10241),
        ("memory_mb", "128"),
        ("timeout_s", 0),
        ("timeout_s", 901),
        ("tmp_mb", 511),
        ("tmp_mb", 10241),
        ("idle_timeout_s", 0),
    ],
)
def test_it_rejects_out_of_range_settings_naming_the_setting(setting, value):
    with pytest.raises(ValueError, match=setting):
        FunctionSpec(source="def lambda_handler(e, c): pass", **{setting: value})


def test_it_takes_lambdas_defaults():
    spec = FunctionSpec(source="x = 1")
    assert (spec.memory_mb, spec.timeout_s, spec.tmp_mb) == (128, 3, 512)
    assert spec.handler == "lambda_function.lambda_handler"


def test_it_rejects_reserved_and_oversized_environment():
    with pytest.raises(ValueError, match="AWS_REGION"):
        FunctionSpec(source="x = 1", environment={"AWS_REGION": "eu-west-1"})
    with pytest.raises(ValueError, match="4 KB"):
        FunctionSpec(source="x = 1", environment={"BIG": "x" * 5000})


def test_it_needs_exactly_one_kind_of_code(tmp_path):
    with pytest.raises(ValueError, match="code"):
        FunctionSpec()
    with pytest.raises(ValueError, match="code"):
        FunctionSpec(source="x = 1", code_dir=str(tmp_path))


def test_equal_content_gives_equal_keys_and_settings_change_it():
    a = FunctionSpec(source="x = 1")
    assert a.key == FunctionSpec(source="x = 1").key
    assert a.key != FunctionSpec(source="x = 1", memory_mb=256).key
    assert a.key != FunctionSpec(source="x = 2").key


def test_a_py_file_keeps_its_module_name_and_finds_its_handler(tmp_path):
    path = tmp_path / "app.py"
    path.write_text("def handler(event, context):\n    return 1\n")
    spec = FunctionSpec.from_path(path)
    assert spec.handler == "app.handler"
    assert spec.source_file == "app.py"
