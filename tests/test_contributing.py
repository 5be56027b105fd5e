"""The contributor's guide stays true: its worked example of a new prior family runs."""

import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).parents[1] / "docs" / "contributing.rst"


def _code_blocks(text):
    """The bodies of the ``.. code-block:: python`` directives of a reST text, dedented."""
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    return ["\n".join(line[3:] for line in block.splitlines()) for block in blocks]


def test_the_worked_example_registers_a_prior_that_fits_samples_and_persists(tmp_path):
    (example,) = _code_blocks(GUIDE.read_text())
    # The example as written, then what the guide promises of the new family: pickling and
    # the safe format restore the model where the registration has run.
    script = example + (
        "\nimport pickle, skvae\n"
        "assert pickle.loads(pickle.dumps(vae)).score(X) == vae.score(X)\n"
        f"skvae.save(vae, {str(tmp_path / 'model.skvae')!r})\n"
        f"assert skvae.load({str(tmp_path / 'model.skvae')!r}).score(X) == vae.score(X)\n"
        "assert not vae.module_.analytic_kl  # no closed form: the KL is a Monte Carlo estimate\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    score, shape = result.stdout.split(" (")
    assert float(score) > -100 and shape.strip() == "2, 64)"
