"""The method-folder check a contributor runs before a full benchmark."""

import shutil

from deqbench.check import check, main
from deqbench.config import ROOT

TEMPLATE = ROOT / "methods" / "_template"


def copy_template(tmp_path, model_py=None, yaml_edit=None):
    folder = tmp_path / "mine"
    shutil.copytree(TEMPLATE, folder)
    if model_py:
        (folder / "model.py").write_text(model_py)
    if yaml_edit:
        text = (folder / "method.yaml").read_text()
        (folder / "method.yaml").write_text(text.replace(*yaml_edit))
    return folder


def test_the_template_passes(tmp_path, capsys):
    assert main([str(copy_template(tmp_path))]) == 0
    assert "mine: ok" in capsys.readouterr().out


def test_schema_problem_names_key_and_schema(tmp_path):
    folder = copy_template(tmp_path, yaml_edit=("losses: [sup, ei]", "losses: [sup, mse]"))
    (problem,) = check(folder)
    assert "mine/method.yaml: key 'losses'" in problem and "method.schema.yaml" in problem


def test_wrong_shape_says_what_is_expected(tmp_path):
    folder = copy_template(tmp_path, yaml_edit=("# tasks: [ct]", "tasks: [ct]"),
                           model_py=(TEMPLATE / "model.py").read_text().replace("return x0 + self.net(x0)", "return x0[..., 1:, :]"))
    (problem,) = check(folder)
    assert "[ct]" in problem and "(2, 1, 31, 32)" in problem and "must return (2, 1, 32, 32)" in problem


def test_unseeded_randomness_is_reported(tmp_path):
    noisy = (TEMPLATE / "model.py").read_text().replace(
        "return x0 + self.net(x0)", "import numpy\n        return x0 + self.net(x0) + float(numpy.random.rand())")
    folder = copy_template(tmp_path, yaml_edit=("# tasks: [ct]", "tasks: [ct]"), model_py=noisy)
    assert any("different outputs" in p for p in check(folder))


def test_a_diverging_loss_is_reported_per_loss(tmp_path):
    nan = (TEMPLATE / "model.py").read_text().replace(
        "return x0 + self.net(x0)", "return x0 + self.net(x0) * (float('nan') if self.training else 1.0)")
    folder = copy_template(tmp_path, yaml_edit=("# tasks: [ct]", "tasks: [ct]"), model_py=nan)
    problems = check(folder)
    assert [p.split("]")[0] for p in problems] == ["[ct, sup", "[ct, ei"]
    assert all("diverged" in p for p in problems)


def test_shipped_reference_method_passes():
    assert check(ROOT / "methods" / "direct") == []


def test_the_readme_building_blocks_example_passes_the_check(tmp_path):
    """The worked example of the README's "Add your method", copied from the README as it
    stands: its method.yaml and model.py make a method that passes ``deqbench-check``."""
    readme = (ROOT / "README.md").read_text()
    example = readme[readme.index("### Iterative methods from building blocks"):]
    folder = tmp_path / "km-prox"
    folder.mkdir()
    for language, name in (("yaml", "method.yaml"), ("python", "model.py")):
        start = example.index(f"```{language}\n") + len(f"```{language}\n")
        (folder / name).write_text(example[start:example.index("```", start)])
    assert check(folder) == []
