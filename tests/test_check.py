"""The method-folder check a contributor runs before a full benchmark."""

import shutil

import pytest

from deqbench.check import check, main
from deqbench.config import ROOT

TEMPLATE = ROOT / "methods" / "_template"


def copy_template(tmp_path, model_py=None, yaml_edit=None, name="mine"):
    folder = tmp_path / name
    shutil.copytree(TEMPLATE, folder)
    if model_py:
        (folder / "model.py").write_text(model_py)
    if yaml_edit:
        text = (folder / "method.yaml").read_text()
        (folder / "method.yaml").write_text(text.replace(*yaml_edit))
    return folder


def template_with(old, new):
    """The template's model.py with ``old`` replaced by ``new``."""
    return (TEMPLATE / "model.py").read_text().replace(old, new)


CT_ONLY = ("# tasks: [ct]", "tasks: [ct]")


def test_the_template_passes(tmp_path, capsys):
    assert main([str(copy_template(tmp_path))]) == 0
    assert "mine: ok" in capsys.readouterr().out


def test_schema_problem_names_key_and_schema(tmp_path):
    folder = copy_template(tmp_path, yaml_edit=("losses: [sup, ei]", "losses: [sup, mse]"))
    (problem,) = check(folder)
    assert "mine/method.yaml: key 'losses'" in problem and "method.schema.yaml" in problem


def test_wrong_shape_says_what_is_expected(tmp_path):
    folder = copy_template(tmp_path, yaml_edit=CT_ONLY,
                           model_py=template_with("return x0 + self.net(x0)", "return x0[..., 1:, :]"))
    (problem,) = check(folder)
    assert problem.startswith("[ct] output: ") and "(2, 1, 31, 32)" in problem and "expected (2, 1, 32, 32)" in problem


def test_an_exception_in_forward_is_one_line_and_the_other_folders_are_checked(tmp_path, capsys):
    raising = copy_template(tmp_path, yaml_edit=CT_ONLY, name="raising",
                            model_py=template_with("return x0 + self.net(x0)", "raise RuntimeError('boom')"))
    fine = copy_template(tmp_path, yaml_edit=CT_ONLY, name="fine")
    assert main([str(raising), str(fine)]) == 1
    out = capsys.readouterr().out
    line = (raising / "model.py").read_text().splitlines().index("        raise RuntimeError('boom')") + 1
    assert f"  - [ct] forward: RuntimeError: boom ({raising / 'model.py'}, line {line})\n" in out
    assert "Traceback" not in out and "fine: ok" in out


def test_an_exception_in_build_names_the_build_stage_not_the_shape(tmp_path):
    folder = copy_template(tmp_path, yaml_edit=CT_ONLY,
                           model_py=template_with('hparams["width"]', 'hparams["depth"]'))
    (problem,) = check(folder)
    assert problem.startswith("[ct] build: KeyError: 'depth' (") and "must return" not in problem


@pytest.mark.parametrize(("model_py", "expected"), [
    ("def build(:\n", "load: SyntaxError: invalid syntax ("),
    ("import torch\n", "model.py: defines no function build(hparams, task)"),
])
def test_a_model_py_that_does_not_load_says_why(tmp_path, model_py, expected):
    (problem,) = check(copy_template(tmp_path, model_py=model_py))
    assert problem.startswith("load: ") and expected in problem


def test_an_unknown_task_is_a_problem_naming_the_known_tasks(tmp_path):
    (problem,) = check(copy_template(tmp_path, yaml_edit=("# tasks: [ct]", "tasks: [ct, mir]")))
    assert "mine/method.yaml: key 'tasks': unknown task(s) mir; the config's tasks: ct, mri" in problem


def test_an_unknown_loss_lists_the_allowed_losses(tmp_path):
    (problem,) = check(copy_template(tmp_path, yaml_edit=("losses: [sup, ei]", "losses: [sup, EI]")))
    assert "key 'losses': ['sup', 'EI'] is not allowed; allowed: [none] or a list of (sup, ei)" in problem


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "usage: deqbench-check" in out
    assert "``" not in out and ":math:" not in out


def test_unseeded_randomness_is_reported(tmp_path):
    noisy = template_with("return x0 + self.net(x0)",
                          "import numpy\n        return x0 + self.net(x0) + float(numpy.random.rand())")
    folder = copy_template(tmp_path, yaml_edit=CT_ONLY, model_py=noisy)
    assert any("different outputs" in p for p in check(folder))


def test_a_diverging_loss_is_reported_per_loss(tmp_path):
    nan = template_with("return x0 + self.net(x0)",
                        "return x0 + self.net(x0) * (float('nan') if self.training else 1.0)")
    folder = copy_template(tmp_path, yaml_edit=CT_ONLY, model_py=nan)
    problems = check(folder)
    assert [p.split("]")[0] for p in problems] == ["[ct, sup", "[ct, ei"]
    assert all("diverged" in p for p in problems)


def test_shipped_reference_method_passes():
    assert check(ROOT / "methods" / "direct") == []

