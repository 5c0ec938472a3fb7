"""The README's example runs as written and does what it says."""

import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_trains_the_tortoise():
    code = re.search(r"## The method in your own training loop\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    ht, accuracy = namespace["ht"], namespace["accuracy"]
    assert ht.num_updates == 300
    # 300 steps on 512 random labels: the hare memorises, and the tortoise that follows it is far above chance (0.2)
    assert accuracy > 0.5, accuracy
    hare = namespace["model"]
    # step 300 is a reset step: the hare was just overwritten with the tortoise
    assert all(torch.equal(a, b) for a, b in zip(hare.state_dict().values(), ht.tortoise.state_dict().values()))
