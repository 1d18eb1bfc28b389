"""Every study on the pipeline runs end to end at its smoke size and leaves a result that `check` accepts."""

import json

import pytest

from experiments.pipeline import check_record, studies

STUDIES = studies()
# cifar10 reads a local CIFAR-10 folder: test_image_experiments.py runs it end to end on a generated one
SMOKE = sorted(set(STUDIES) - {"cifar10"})


@pytest.mark.slow
@pytest.mark.parametrize("name", SMOKE)
def test_study_runs_at_smoke_size_and_passes_check(name, tmp_path):
    study = STUDIES[name]
    folder = study.execute(study.configure(quick=True, **study.smoke, out_dir=str(tmp_path), progress=False))
    record = json.loads((folder / "metrics.json").read_text())
    assert record["study"] == name and record["provenance"]["quick"] is True
    assert [c["id"] for c in record["claims"]] == [c.id for c in study.claims]
    assert check_record(folder / "metrics.json", record, STUDIES).errors == []
    assert (folder / "table.md").read_text().count("## Claims") == 1
